# Trains with trainer_lib (which a Tracer may wrap) and leaves best_score among its globals.
import sys

from trainer_lib import Trainer

lr = float(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--lr=")), "1.0"))
best_score = Trainer().fit(DATA, epochs=1) * lr  # noqa: F821 - DATA comes from the work's run(DATA=...)
print(f"best_score={best_score}", flush=True)
