"""Study browsers rendered ahead of their visitors: Voilà's kernel pool, under the cap, handed out safely.

Voilà 0.5's *preheat* mode (``voila.voila_kernel_manager``) keeps, per notebook, a pool
of kernels that have already run the notebook; a visitor gets one at once, and the pool
refills. :func:`pooled_kernel_manager` puts :class:`DashboardPool` on top of it, which
changes four things:

* **Only the pooled dashboards** (:data:`POOLED_NOTEBOOKS`, the study browser) get a
  pool, of :attr:`DashboardPool.pool_size` kernels. Pooled kernels count in
  ``max_kernels``: the pool fills only into free places, so memory stays bounded and a
  crowd gets the busy page rather than more kernels than the machine holds. They are
  spare places, not taken ones: a visitor of another dashboard who finds the cap
  reached gets the place of a waiting pooled kernel, shut down for them.
* **Refills are gentle.** One kernel at a time, and only once no kernel is starting and
  every kernel has been quiet for :data:`REFILL_QUIET_S` seconds, so refilling after a
  crowd does not slow the crowd's own pages.
* **The hand-out.** A pooled kernel starts with no visitor: in the Hub's mode it has
  ``IMAGING_ACCESS=team`` and no user (no permission at all), and nobody may reach it.
  When the page handler takes it for a visitor, this server records them as its owner,
  then runs :func:`imaging_lib.handout.hand_out` in it over the shell channel,
  silently (no ``execute_input`` reaches the page), with the name, groups and OAuth
  token the Hub gave this server. The browser cannot do this (Voilà drops a page's
  execute requests), and a kernel serves one visitor: it never goes back to the pool.
  The page is sent only after the kernel has answered.
* **No request info.** Voilà's ``/voila/query/<kernel id>`` websocket (which hands a
  kernel its visitor's request, query string and all, to anyone naming the kernel) is
  not served, and what Voilà caches for it is dropped with the kernel; the request URL
  of one visitor is not passed on to the kernels started to refill the pool.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server._tz import utcnow
from tornado import web
from traitlets import Integer
from traitlets.config import LoggingConfigurable
from voila.request_info_handler import RequestInfoSocketHandler
from voila.voila_kernel_manager import voila_kernel_manager_factory

from ..errors import ImagingError
from .hub_auth import CURRENT_VISITOR, Visitor

__all__ = ["HAND_OUT_TIMEOUT_S", "POOLED_NOTEBOOKS", "DashboardPool", "hand_out_code", "pooled_kernel_manager"]

POOLED_NOTEBOOKS = ("studies.ipynb",)
"""The dashboards kept rendered ahead of their visitors (paths under the dashboards' folder)."""

REFILL_QUIET_S = 3.0
"""Seconds every kernel must have been quiet (no message) before the pool starts another kernel."""

HAND_OUT_TIMEOUT_S = 120.0
"""Seconds a pooled kernel has to take its visitor (it may still be running its notebook)."""


def hand_out_code(visitor: Visitor | None) -> str:
    """The code the server runs in a pooled kernel to hand it to ``visitor`` (``None``: the token's one person).

    The visitor travels as one JSON string literal (``repr`` of the JSON text), so no
    name or group can turn into code.
    """
    payload = None
    if visitor is not None:
        payload = {"name": visitor.name, "groups": list(visitor.groups), "token": visitor.token}
    return f"from imaging_lib.handout import hand_out\nhand_out({json.dumps(payload)!r})\n"


async def run_silently(kernel_manager: Any, code: str, timeout: float = HAND_OUT_TIMEOUT_S) -> None:
    """Run ``code`` in the kernel of ``kernel_manager`` on its shell channel, silently, and wait for its reply.

    Raises
    ------
    ImagingError
        If the kernel reports an error or does not answer within ``timeout`` seconds.
    """
    client = kernel_manager.client()
    client.start_channels()
    try:
        msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise ImagingError("dashboard kernel", f"did not take its visitor within {timeout:.0f} s")
            try:
                reply = await client.get_shell_msg(timeout=left)
            except Exception as exc:  # queue.Empty: no answer in time
                raise ImagingError("dashboard kernel", f"did not take its visitor within {timeout:.0f} s") from exc
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content.get("status") != "ok":
            error = f"{content.get('ename')}: {content.get('evalue')}"
            raise ImagingError("dashboard kernel", f"refused its visitor: {error}")
    finally:
        client.stop_channels()


class DashboardPool(LoggingConfigurable):
    """Mixin over Voilà's ``VoilaKernelManager`` (itself over the dashboards' kernel manager): see the module."""

    pool_size = Integer(0, config=True, help="Kernels kept rendered ahead of visitors for each pooled dashboard.")

    def __init__(self, **kwargs: Any) -> None:
        self._closing = False
        self._refill_lock: asyncio.Lock | None = None
        super().__init__(**kwargs)

    # ---------------------------------------------------------------- hand-out
    async def get_rendered_notebook(
        self, notebook_name: str, extra_kernel_env_variables: dict | None = None, **kwargs: Any
    ) -> tuple[asyncio.Task, list[str], str]:
        """Take a pooled kernel for the request's visitor (their identity handed over first).

        Raises
        ------
        tornado.web.HTTPError
            403 without a signed-in visitor (Hub mode); 503 when no pooled kernel could be
            started (the cap was reached).
        """
        visitor = CURRENT_VISITOR.get()
        self_: Any = self
        if self_.per_visitor and visitor is None:
            raise web.HTTPError(403, "No signed-in visitor to hand a dashboard kernel to")
        pool = self_._pools.get(notebook_name, [])
        while pool:
            item = pool.pop(0)
            try:  # let its notebook finish: Voilà's page of a kernel stopped mid-notebook never ends
                await asyncio.wait_for(asyncio.shield((await item)["task"]), HAND_OUT_TIMEOUT_S)
            except Exception:  # a refill refused at the cap, or a kernel that died: try the next one
                self_.log.warning("a pooled kernel for %s is unusable", notebook_name, exc_info=True)
                continue
            pool.insert(0, item)  # Voilà's own hand-out takes it at once (no request URL passed on to the refills)
            render_task, rendered, kernel_id = await super().get_rendered_notebook(  # type: ignore[misc]
                notebook_name, {}, **kwargs
            )
            if self_.per_visitor and visitor is not None:
                self_._owners[kernel_id] = visitor.name
            try:
                await run_silently(self_.get_kernel(kernel_id), hand_out_code(visitor))
            except ImagingError:
                self_.log.error("pooled kernel %s could not take its visitor; shutting it down", kernel_id)
                await self_.shutdown_kernel(kernel_id, now=True)
                raise web.HTTPError(503, "The dashboard could not be prepared; reload the page.") from None
            self_.log.info("pooled kernel %s handed to %s", kernel_id, visitor.name if visitor else "the token holder")
            return render_task, rendered, kernel_id
        raise self_.busy_error()

    async def start_kernel(self, **kwargs: Any) -> str:
        """Start a visitor's kernel; at the cap, in the place of a pooled kernel still waiting for its visitor."""
        self_: Any = self
        if kwargs.get("kernel_id") is None and len(self_.list_kernel_ids()) + self_._starting >= self_.max_kernels:
            await self._reclaim_one()
        return await super().start_kernel(**kwargs)  # type: ignore[misc]

    async def _reclaim_one(self) -> None:
        self_: Any = self
        for pool in self_._pools.values():
            for item in reversed(pool):
                if item.done() and item.exception() is None:
                    pool.remove(item)
                    content = item.result()
                    content["task"].cancel()
                    self_.log.info("pooled kernel %s gives its place to a visitor", content["kernel_id"])
                    await self_.shutdown_kernel(content["kernel_id"], now=True)
                    return

    # ---------------------------------------------------------------- refills
    def fill_if_needed(
        self,
        delay: float | None = None,
        notebook_name: str | None = None,
        extra_kernel_env_variables: dict | None = None,
        **kwargs: Any,
    ) -> None:
        """Refill the pool of ``notebook_name`` (if pooled) after ``delay`` seconds, one kernel at a time."""
        self_: Any = self
        if notebook_name not in POOLED_NOTEBOOKS or self.pool_size <= 0 or self._closing:
            return
        wait = self_.fill_delay if delay is None else delay  # Voilà's, 1 s after a hand-out
        asyncio.get_event_loop().create_task(self._refill(notebook_name, wait, kwargs))

    def _busy_within(self, seconds: float) -> bool:
        """Whether any kernel sent a message in the last ``seconds`` (jupyter_server's own activity record)."""
        self_: Any = self
        return bool((utcnow() - self_.last_kernel_activity).total_seconds() < seconds)

    def _room(self) -> int:
        self_: Any = self
        pending = sum(1 for pool in self_._pools.values() for item in pool if not item.done())
        return int(self_.max_kernels - len(self_.list_kernel_ids()) - self_._starting - pending)

    async def _refill(self, notebook_name: str, delay: float, kwargs: dict) -> None:
        self_: Any = self
        await asyncio.sleep(delay)
        if self._refill_lock is None:
            self._refill_lock = asyncio.Lock()
        async with self._refill_lock:
            while not self._closing:
                while not self._closing and (self_._starting or self._busy_within(REFILL_QUIET_S)):
                    await asyncio.sleep(0.5)  # the visitors' kernels first
                pool = self_._pools.setdefault(notebook_name, [])
                if self._closing or len(pool) >= self.pool_size or self._room() <= 0:
                    return
                self_.kernel_pools_config = {"default": {"pool_size": 0}, notebook_name: {"pool_size": len(pool) + 1}}
                super().fill_if_needed(0, notebook_name, {}, **kwargs)  # type: ignore[misc]
                try:
                    started = await pool[-1]
                    await started["task"]  # its notebook has run: the machine is free again
                except Exception:
                    self_.log.warning("a pooled kernel for %s failed to start", notebook_name, exc_info=True)
                    return

    # ---------------------------------------------------------------- bookkeeping
    def remove_kernel(self, kernel_id: str) -> Any:
        """Forget the kernel (and what Voilà cached for it); its place may refill the pools."""
        RequestInfoSocketHandler._cache.pop(kernel_id, None)
        removed = super().remove_kernel(kernel_id)  # type: ignore[misc]
        for name in POOLED_NOTEBOOKS:
            self.fill_if_needed(notebook_name=name)
        return removed

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:
        """Stop every kernel, pooled or not, and refill nothing more."""
        self._closing = True
        await super().shutdown_all(*args, **kwargs)  # type: ignore[misc]


def pooled_kernel_manager(base: type, pool_size: int) -> type:
    """Voilà's pooling kernel manager over ``base``, :class:`DashboardPool` on top (no pool: Voilà's plain one)."""
    if pool_size <= 0:
        return voila_kernel_manager_factory(base, False, 0)
    voila_pool = voila_kernel_manager_factory(base, True, 0)
    return type("DashboardPoolKernelManager", (DashboardPool, voila_pool), {})
