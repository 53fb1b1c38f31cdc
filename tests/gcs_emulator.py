"""A Google Cloud Storage stand-in on 127.0.0.1, for running xlt against gs:// paths offline.

The server is `gcp-storage-emulator` (PyPI, pinned in the test extra), in memory, in a child
process (`python tests/gcs_emulator.py --serve PORT PROXY_PORT CERT_DIR BUCKET`), with the
few fixes its version needs for the clients xlt uses, and a TLS proxy for TensorFlow:

  client                          used by xlt for                  reaches the server via
  tf.io.gfile (through epath)     directories, config.gin, JSONL    https_proxy -> TLS proxy
  tensorstore                     checkpoint arrays (orbax)         TENSORSTORE_GCS_HTTP_URL
  google-cloud-storage            orbax step listing, TensorBoard   STORAGE_EMULATOR_HOST

TensorFlow's GCS endpoints are fixed to https://www.googleapis.com and it has no emulator
setting, but its libcurl honours https_proxy and CURL_CA_BUNDLE: the proxy answers CONNECT
with a throw-away certificate for *.googleapis.com and forwards to the server.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

# --------------------------------------------------------------------------- server side


def _patch_emulator():
  """Fixes of gcp-storage-emulator 2026.7.19 for the clients above."""
  from http import HTTPStatus

  from gcp_storage_emulator import server
  from gcp_storage_emulator.exceptions import NotFound
  from gcp_storage_emulator.handlers import objects

  def move(request, response, storage, *args, **kwargs):  # objects.move: gcsfs / TF renames
    p = request.params
    try:
      moved = objects._copy(request.base_url, storage, p["bucket_name"], p["object_id"],
                            p["bucket_name"], p["dest_object_id"])
      objects._delete(storage, p["bucket_name"], p["object_id"])
      response.json(moved)
    except NotFound:
      response.status = HTTPStatus.NOT_FOUND

  server.HANDLERS = ((r"^/storage/v1/b/(?P<bucket_name>[-.\w]+)/o/(?P<object_id>.*[^/]+)"
                      r"/moveTo/o/(?P<dest_object_id>.*[^/]+)$", {server.POST: move}),
                     *server.HANDLERS)

  # Behind the TLS proxy the client spoke https: resumable-upload URLs must say so too.
  request_init = server.Request.__init__

  def init(self, handler, method):
    request_init(self, handler, method)
    if (handler.headers.get("Host") or "").split(":")[0].endswith("googleapis.com"):
      self._base_url = "https://" + handler.headers["Host"].split(":")[0]
      self._full_url = self._base_url + self._path

  server.Request.__init__ = init

  # A zero-byte upload (TF's "dir/" markers) has no body: the emulator took it for None.
  media_upload = objects._media_upload

  def upload(request, response, storage):
    if request.data is None:
      request._data = b""
    return media_upload(request, response, storage)

  objects._media_upload = upload

  # Media downloads carry the object's generation in x-goog-generation: tensorstore reads
  # it to update OCDBT manifests ("Malformed StorageGeneration" without it).
  download = objects.download

  def download_with_generation(request, response, storage, *args, **kwargs):
    try:
      obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
      response["x-goog-generation"] = str(obj["generation"])
      response["x-goog-metageneration"] = str(obj["metageneration"])
    except NotFound:
      pass  # download() answers 404
    return download(request, response, storage, *args, **kwargs)

  objects.download = download_with_generation
  server.HANDLERS = tuple(
      (pattern, {m: download_with_generation if h is download else h for m, h in methods.items()})
      for pattern, methods in server.HANDLERS)

  # libcurl sends Content-Length *and* chunked encoding; chunked wins (RFC 9112 6.3).
  read_raw = server._read_raw_data

  def read(handler):
    if (handler.headers.get("Transfer-Encoding") or "").lower() != "chunked":
      return read_raw(handler)
    data = b""
    while True:
      size = int(handler.rfile.readline().strip().split(b";")[0] or b"0", 16)
      if size == 0:
        while handler.rfile.readline().strip():  # trailers
          pass
        return data
      data += handler.rfile.read(size)
      handler.rfile.readline()

  server._read_raw_data = read

  # libcurl waits 1 s for "100 Continue" before each upload body.
  parse_request = server.RequestHandler.parse_request

  def parse(self):
    ok = parse_request(self)
    if ok and (self.headers.get("Expect") or "").lower() == "100-continue":
      self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
      self.wfile.flush()
    return ok

  server.RequestHandler.parse_request = parse

  # Clients that race two requests and drop one leave broken pipes: not worth a traceback.
  handle_error = server.server.HTTPServer.handle_error

  def quiet(self, request, client_address):
    if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
      handle_error(self, request, client_address)

  server.server.HTTPServer.handle_error = quiet
  return server


def _certificates(cert_dir: str) -> ssl.SSLContext:
  """A throw-away CA (ca.pem, for CURL_CA_BUNDLE) and a *.googleapis.com certificate."""
  from cryptography import x509
  from cryptography.hazmat.primitives import hashes, serialization
  from cryptography.hazmat.primitives.asymmetric import ec
  from cryptography.x509.oid import NameOID

  now = datetime.datetime.now(datetime.timezone.utc)
  valid = dict(not_valid_before=now - datetime.timedelta(days=1),
               not_valid_after=now + datetime.timedelta(days=7))

  def certificate(subject, issuer, public_key, signing_key, extensions):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(valid["not_valid_before"])
               .not_valid_after(valid["not_valid_after"]))
    for extension, critical in extensions:
      builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())

  ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
  ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xlt test CA")])
  ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, [
      (x509.BasicConstraints(ca=True, path_length=None), True),
      (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)])
  hosts = ["www.googleapis.com", "storage.googleapis.com", "*.googleapis.com"]
  leaf = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), ca_name,
                     key.public_key(), ca_key, [
                         (x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False),
                         (x509.BasicConstraints(ca=False, path_length=None), True)])
  pem = serialization.Encoding.PEM
  os.makedirs(cert_dir, exist_ok=True)
  paths = {name: os.path.join(cert_dir, name) for name in ("ca.pem", "leaf.pem", "leaf.key")}
  with open(paths["ca.pem"], "wb") as f:
    f.write(ca.public_bytes(pem))
  with open(paths["leaf.pem"], "wb") as f:
    f.write(leaf.public_bytes(pem) + ca.public_bytes(pem))
  with open(paths["leaf.key"], "wb") as f:
    f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
  context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  context.load_cert_chain(paths["leaf.pem"], paths["leaf.key"])
  return context


def _pipe(a: socket.socket, b: socket.socket) -> None:
  try:
    while True:
      ready, _, _ = select.select([a, b], [], [], 120)
      if not ready:
        return
      for s in ready:
        data = s.recv(65536)
        while isinstance(s, ssl.SSLSocket) and s.pending():
          data += s.recv(s.pending())
        if not data:
          return
        (b if s is a else a).sendall(data)
  except (OSError, ssl.SSLError):
    return
  finally:
    for s in (a, b):
      try:
        s.close()
      except OSError:
        pass


def _proxy(listener: socket.socket, context: ssl.SSLContext, port: int) -> None:
  """CONNECT proxy that terminates TLS with our certificate and forwards plain HTTP."""

  def serve(conn):
    try:
      head = b""
      while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
          return conn.close()
        head += chunk
      if not head.startswith(b"CONNECT "):
        conn.sendall(b"HTTP/1.1 405 Only CONNECT\r\nContent-Length: 0\r\n\r\n")
        return conn.close()
      conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
      _pipe(context.wrap_socket(conn, server_side=True),
            socket.create_connection(("127.0.0.1", port)))
    except (OSError, ssl.SSLError):
      conn.close()

  while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()


def serve(port: int, proxy_port: int, cert_dir: str, bucket: str) -> None:
  import logging
  logging.basicConfig(level=logging.CRITICAL)
  server = _patch_emulator()
  emulator = server.create_server("127.0.0.1", port, in_memory=True)
  server.buckets.create_bucket(bucket, emulator._storage)
  emulator.start()
  listener = socket.socket()
  listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  listener.bind(("127.0.0.1", proxy_port))
  listener.listen(64)
  threading.Thread(target=_proxy, args=(listener, _certificates(cert_dir), port),
                   daemon=True).start()
  print("READY", flush=True)
  try:
    sys.stdin.read()  # until the parent closes the pipe
  finally:
    emulator.stop()


# --------------------------------------------------------------------------- client side


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@dataclasses.dataclass
class Emulator:
  process: subprocess.Popen
  port: int
  proxy_port: int
  cert_dir: str
  bucket: str

  def env(self) -> dict[str, str]:
    """What a child process needs to reach this server instead of Google, with no
    credentials and no metadata server."""
    url = f"http://127.0.0.1:{self.port}"
    proxy = f"http://127.0.0.1:{self.proxy_port}"
    return {
        "STORAGE_EMULATOR_HOST": url,  # google-cloud-storage (anonymous when set)
        "TENSORSTORE_GCS_HTTP_URL": url,  # tensorstore
        "https_proxy": proxy, "HTTPS_PROXY": proxy,  # TensorFlow's libcurl
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
        "CURL_CA_BUNDLE": os.path.join(self.cert_dir, "ca.pem"),
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test-token",  # TF and tensorstore: no auth search
        "GCS_RETRY_CONFIG_MAX_RETRIES": "2",  # TF fails in seconds, not minutes
        "GCE_METADATA_ROOT": "127.0.0.1:9", "GCE_METADATA_HOST": "127.0.0.1:9",
        "NO_GCE_CHECK": "true", "GOOGLE_CLOUD_PROJECT": "xlt-test",
    }

  def objects(self, prefix: str = "") -> list[str]:
    """Object names in the bucket, from the server itself (not through a client under test)."""
    names, token = [], None
    while True:
      query = {"prefix": prefix, **({"pageToken": token} if token else {})}
      url = (f"http://127.0.0.1:{self.port}/storage/v1/b/{self.bucket}/o?"
             + urllib.parse.urlencode(query))
      with urllib.request.urlopen(url, timeout=30) as response:
        page = json.load(response)
      names += [item["name"] for item in page.get("items", [])]
      token = page.get("nextPageToken")
      if not token:
        return names

  def read(self, name: str) -> bytes:
    url = (f"http://127.0.0.1:{self.port}/download/storage/v1/b/{self.bucket}/o/"
           f"{urllib.parse.quote(name, safe='')}?alt=media")
    with urllib.request.urlopen(url, timeout=30) as response:
      return response.read()

  def stop(self) -> None:
    if self.process.stdin:
      self.process.stdin.close()
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()


def start(bucket: str, cert_dir: str) -> Emulator:
  port, proxy_port = _free_port(), _free_port()
  process = subprocess.Popen(
      [sys.executable, os.path.abspath(__file__), "--serve", str(port), str(proxy_port),
       cert_dir, bucket], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  line = process.stdout.readline().strip()
  if line != "READY":
    process.kill()
    raise RuntimeError(f"GCS emulator did not start (exit {process.wait()}): {line!r}")
  return Emulator(process, port, proxy_port, cert_dir, bucket)


if __name__ == "__main__":
  if sys.argv[1:2] == ["--serve"]:
    _, _, port_, proxy_port_, cert_dir_, bucket_ = sys.argv
    serve(int(port_), int(proxy_port_), cert_dir_, bucket_)
