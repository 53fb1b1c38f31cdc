"""Low-bit round-to-nearest quantization of weight matrices (PEQA, DESIGN.md 3)."""
