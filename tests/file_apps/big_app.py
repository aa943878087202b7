# A large file from one work to another: SIZE_MB megabytes (a repeated pseudo-random pattern), checked by sha256.
import hashlib
import os
import time

import lit as L

MB = 1024 * 1024


def pattern() -> bytes:
    return hashlib.sha256(b"lit").digest() * (MB // 32)  # 1 MB


class Producer(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.out = None
        self.sha = ""

    def run(self, size_mb: int) -> None:
        digest = hashlib.sha256()
        block = pattern()
        with open("big.bin", "wb") as fh:
            for i in range(size_mb):
                chunk = i.to_bytes(4, "big") + block[4:]  # every megabyte differs
                fh.write(chunk)
                digest.update(chunk)
        self.sha = digest.hexdigest()
        self.out = L.Path("big.bin")
        print(f"wrote {size_mb} MB sha256 {self.sha} at {time.time():.3f}")


class Consumer(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.sha = ""
        self.size = 0

    def run(self, path: L.Path, expected: str) -> None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while True:
                block = fh.read(MB)
                if not block:
                    break
                digest.update(block)
        self.sha, self.size = digest.hexdigest(), os.path.getsize(path)
        print(f"received {self.size} bytes sha256 {self.sha} ok={self.sha == expected} at {time.time():.3f}")


class Big(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.producer = Producer()
        self.consumer = Consumer()

    def run(self) -> None:
        self.producer.run(int(os.environ.get("SIZE_MB", "200")))
        self.consumer.run(self.producer.out, self.producer.sha)
        if self.consumer.sha != self.producer.sha:
            self.fail(f"sha256 differs: {self.consumer.sha} != {self.producer.sha}")
        self.stop(f"moved {self.consumer.size} bytes intact")


app = L.LightningApp(Big())
