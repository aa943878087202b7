# One work puts a large file (SIZE_MB megabytes, every megabyte different) into a Drive and prints its sha256.
import hashlib
import os

import lit as L

MB = 1024 * 1024


class Putter(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.drive = L.Drive("lit://big")
        self.sha = ""

    def run(self, size_mb: int) -> None:
        digest = hashlib.sha256()
        block = hashlib.sha256(b"drive").digest() * (MB // 32)
        with open("big.bin", "wb") as fh:
            for i in range(size_mb):
                chunk = i.to_bytes(4, "big") + block[4:]
                fh.write(chunk)
                digest.update(chunk)
        print(f"putting {size_mb} MB", flush=True)
        self.drive.put("big.bin")
        self.sha = digest.hexdigest()
        print(f"put {size_mb} MB sha256 {self.sha}")


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.putter = Putter()

    def run(self) -> None:
        self.putter.run(int(os.environ.get("SIZE_MB", "100")))
        if self.putter.has_succeeded:
            self.stop("put")


app = L.LightningApp(Flow())
