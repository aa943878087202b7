# A stand-in for a training library the script uses; a Tracer wraps its Trainer.fit.
class Trainer:
    def __init__(self, epochs=1):
        self.epochs = epochs

    def fit(self, data, epochs=None):
        epochs = epochs or self.epochs
        return sum(data) / len(data) * epochs
