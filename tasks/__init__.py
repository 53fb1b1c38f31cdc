"""SeqIO registrations of the project's tasks and mixtures (imported for its side effects)."""
from tasks import demo  # noqa: F401
