# A model API: a PythonServer work serves a tiny sentiment model at work.url; a client work sends it a few
# reviews over HTTP, and the flow stops the app once they are answered. `lit run examples/model_api_app.py`
# (add `--cloud NAME` to put the server and the client on machines of their own).
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import lit as L
from lit.components import Category, PythonServer, Text

TRAINING = [
    ("a wonderful film, I loved every minute", 1),
    ("great acting and a moving story", 1),
    ("funny, warm and beautifully shot", 1),
    ("the best thing I have seen this year", 1),
    ("a boring mess, I want my money back", 0),
    ("terrible acting and a dull story", 0),
    ("slow, predictable and far too long", 0),
    ("the worst film I have seen this year", 0),
]
REVIEWS = ["what a wonderful, moving story", "dull and far too long", "I loved the acting"]


def words(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split() if w.strip(".,!?")]


class SentimentServer(PythonServer):
    """Naive Bayes over word counts: trained in setup(), in the work's own process, in a millisecond."""

    def __init__(self) -> None:
        super().__init__(input_type=Text, output_type=Category, cloud_compute=L.CloudCompute("cpu"))

    def setup(self) -> None:
        self._counts = {label: Counter() for label in (0, 1)}
        for text, label in TRAINING:
            self._counts[label].update(words(text))
        self._vocabulary = set(self._counts[0]) | set(self._counts[1])

    def predict(self, request: Text) -> dict[str, Any]:
        if not request.text:
            raise ValueError("text is empty")
        scores = {}
        for label, counts in self._counts.items():
            total = sum(counts.values()) + len(self._vocabulary)
            scores[label] = sum(math.log((counts[w] + 1) / total) for w in words(request.text))
        return {"category": max(scores, key=lambda label: scores[label])}


class Client(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.answers: list[Any] = []

    def run(self, url: str, reviews: list[str]) -> None:
        answers = []
        for review in reviews:
            request = urllib.request.Request(f"{url}/predict", data=json.dumps({"text": review}).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    answers.append(json.load(response)["category"])
            except urllib.error.HTTPError as exc:  # 422 / 500: the server says what was wrong, on one line
                answers.append(json.load(exc)["detail"])
            print(f"{review!r} -> {answers[-1]}")
        self.answers = answers


class ModelAPI(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.server = SentimentServer()
        self.client = Client()

    def run(self) -> None:
        self.server.run()  # parallel: it keeps serving while the flow goes on
        if not self.server.ready:
            return
        self.client.run(self.server.url, [*REVIEWS, ""])
        if self.client.has_succeeded:
            labels = ["negative" if a == 0 else "positive" if a == 1 else f"error ({a})" for a in self.client.answers]
            self.stop(f"answered {len(labels)} requests: {', '.join(labels)}")


app = L.LightningApp(ModelAPI())
