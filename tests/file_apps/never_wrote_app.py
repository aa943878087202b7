# A work publishes a Path to a file it never wrote; the work that receives it must fail, saying so.
import lit as L


class Producer(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.out = None

    def run(self) -> None:
        self.out = L.Path("missing.bin")  # published, never written


class Consumer(L.LightningWork):
    def run(self, path: L.Path) -> None:
        print(f"consumer got {path}")  # never reached: the input cannot be made present


class NeverWrote(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.producer = Producer()
        self.consumer = Consumer()

    def run(self) -> None:
        self.producer.run()
        self.consumer.run(self.producer.out)
        self.stop("the consumer ran")


app = L.LightningApp(NeverWrote())
