"""A cluster's lit pods as the API server reports them, kept current by one watch.

The way a controller does it (client-go's reflector: list, then watch from the list's resourceVersion, list again
when the server says the version is too old, 410 Gone; the Python client's kubernetes.watch.Watch streams the
events). Every work of a run waits on this one view instead of polling the API server per pod: for its pod to
run, to be gone after its deletion, or for why it ended under a running work (evicted, OOMKilled, deleted by
someone else). The watch needs `list` and `watch` on pods, which `lit cluster policy` grants."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from .client import Api, kubernetes_module

WATCH_SECONDS = 30  # each watch request ends after this and is made again (from the last resourceVersion)
RELIST_DELAY_SECONDS = 0.5
CANCEL_CHECK_SECONDS = 0.2  # how often a waiter that can be cancelled looks
CLOSE_WAIT_SECONDS = 2.0  # close() waits this long for the watch's thread: no thread outlives the run's end


class PodWatch:
    """Pods matching `selector` in the API's namespace: the newest object of each, and the last object of
    each pod that was deleted since the watch started."""

    def __init__(self, api: Api, selector: str) -> None:
        self.api = api
        self.selector = selector
        self.pods: dict[str, Any] = {}
        self.deleted: dict[str, Any] = {}
        self.versions: dict[str, int] = {}  # pod name -> how many changes seen (waiters wait for a new one)
        self.synced = False
        self.error: Optional[str] = None  # the last reason the watch failed, while it retries
        self._cond = threading.Condition()
        self._closed = False
        self._watch: Any = None
        self._thread = threading.Thread(target=self._loop, name=f"lit-podwatch-{selector}", daemon=True)
        self._thread.start()

    # -- what waiters read -----------------------------------------------------------------------------
    def state(self, name: str) -> tuple[Optional[Any], bool]:
        """(the newest object of the pod, whether it was deleted); (None, False) if the watch has not seen it."""
        with self._cond:
            if name in self.deleted:
                return self.deleted[name], True
            return self.pods.get(name), False

    def wait(self, name: str, done: Callable[[Optional[Any], bool], bool], timeout: float,
             seen: Optional[Callable[[Optional[Any], bool], None]] = None,
             cancelled: Optional[Callable[[], bool]] = None) -> bool:
        """Until `done(pod, deleted)` holds for the pod (True), or `timeout` seconds pass or `cancelled()` holds
        (False); `seen` is called with each new state before `done` is asked."""
        deadline = time.monotonic() + timeout
        last = -1
        with self._cond:
            while True:
                version = self.versions.get(name, 0)
                if self.synced and version != last:
                    last = version
                    pod, deleted = self.deleted.get(name), name in self.deleted
                    if not deleted:
                        pod = self.pods.get(name)
                    if seen is not None:
                        seen(pod, deleted)
                    if done(pod, deleted):
                        return True
                left = deadline - time.monotonic()
                if left <= 0 or self._closed or (cancelled is not None and cancelled()):
                    return False
                self._cond.wait(left if cancelled is None else min(left, CANCEL_CHECK_SECONDS))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        watch = self._watch
        if watch is not None:
            watch.stop()
            # Wake the thread now rather than at the next event or after WATCH_SECONDS: close the response it reads
            # (kubernetes.watch.Watch keeps it as _resp while it streams). Its read then fails and the loop ends.
            response = getattr(watch, "_resp", None)
            if response is not None:
                try:
                    response.close()
                except Exception:  # already closed or mid-read: the thread ends either way
                    pass
        self._thread.join(CLOSE_WAIT_SECONDS)

    # -- the watch itself --------------------------------------------------------------------------
    def _loop(self) -> None:
        kubernetes = kubernetes_module()
        core = self.api.core
        while not self._closed:
            try:
                listed = core.list_namespaced_pod(self.api.namespace, label_selector=self.selector)
                self._replace(listed.items)
                version = listed.metadata.resource_version
                while not self._closed:
                    self._watch = kubernetes.watch.Watch()
                    for event in self._watch.stream(core.list_namespaced_pod, self.api.namespace,
                                                    label_selector=self.selector, resource_version=version,
                                                    timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True):
                        if self._closed:
                            return
                        pod = event["object"]
                        version = pod.metadata.resource_version or version
                        if event["type"] != "BOOKMARK":
                            self._apply(event["type"], pod)
                    self.error = None
            except kubernetes.client.exceptions.ApiException as exc:
                # 410 Gone (the version is too old): list again. Anything else: say so, wait a little, list again.
                self.error = None if exc.status == 410 else f"{exc.status} {exc.reason}"
            except Exception as exc:  # a dropped connection, the client's own errors: list again
                self.error = f"{type(exc).__name__}: {exc}"
            if not self._closed:
                time.sleep(RELIST_DELAY_SECONDS)

    def _replace(self, items: list[Any]) -> None:
        with self._cond:
            current = {p.metadata.name: p for p in items}
            for name, pod in self.pods.items():
                if name not in current:  # deleted while no watch ran
                    self.deleted[name] = pod
                    self._bump(name)
            for name, pod in current.items():
                if self.pods.get(name) is None or self.pods[name].metadata.resource_version != \
                        pod.metadata.resource_version:
                    self._bump(name)
            self.pods = current
            self.synced = True
            self._cond.notify_all()

    def _apply(self, kind: str, pod: Any) -> None:
        name = pod.metadata.name
        with self._cond:
            if kind == "DELETED":
                self.pods.pop(name, None)
                self.deleted[name] = pod
            else:
                self.pods[name] = pod
            self._bump(name)
            self._cond.notify_all()

    def _bump(self, name: str) -> None:
        self.versions[name] = self.versions.get(name, 0) + 1
