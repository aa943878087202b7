# A producer publishes a file; before the consumer runs, its stored copy is changed. The consumer must fail.
#   CORRUPT=local  STORE=<artifacts dir>: the flow flips a byte of the store's copy itself;
#   CORRUPT=marker MARKER=<file>: the flow writes the file's sha256 to MARKER and waits for MARKER.done (the test
#   changes the copy on the producer's host meanwhile).
import os
import pathlib

import lit as L


class Producer(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.out = None

    def run(self) -> None:
        with open("weights.bin", "wb") as fh:
            fh.write(bytes(range(256)) * 64)
        self.out = L.Path("weights.bin")


class Consumer(L.LightningWork):
    def run(self, path: L.Path) -> None:
        print(f"consumer read {len(open(path, 'rb').read())} bytes")


def flip_a_byte(file: pathlib.Path) -> None:
    os.chmod(file, 0o644)  # the store keeps it read-only
    with open(file, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))


class Corrupt(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.producer = Producer()
        self.consumer = Consumer()
        self.tampered = False

    def run(self) -> None:
        self.producer.run()
        if not self.tampered:
            sha = self.producer.out._lit_sha256
            if os.environ["CORRUPT"] == "local":
                flip_a_byte(pathlib.Path(os.environ["STORE"]) / sha)
            else:
                marker = pathlib.Path(os.environ["MARKER"])
                if not marker.exists():
                    marker.write_text(sha)
                if not marker.with_name(marker.name + ".done").exists():
                    self.schedule("* * * * * *")  # look again in a second
                    return
            self.tampered = True
        self.consumer.run(self.producer.out)
        self.stop("the consumer ran")


app = L.LightningApp(Corrupt())
