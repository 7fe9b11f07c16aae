"""The notifier over real delivery paths on loopback: apprise's JSON and form webhooks to a local HTTP
receiver, e-mail to a local SMTP server (aiosmtpd); routing by kind and severity; dedup and its window;
retries; destinations that hang or refuse, which never hold the others, the caller or the event loop; the
bound on what waits; notices raised from another thread; the counts as Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from receivers import WAIT_S, HttpReceiver, SmtpReceiver, until

from pithead import config as config_mod
from pithead.events import Notice, NoticeKind, NoticeSeverity
from pithead.notify.deliver import DestinationError
from pithead.notify.metrics import NotifierCollector
from pithead.notify.notifier import Notifier, send_test
from pithead.notify.routing import NoticeRoute, RouteError, routes_from_config

pytestmark = [pytest.mark.timeout(120)]

T0 = 1_750_000_000.0


def notice(kind: NoticeKind = "block.found", severity: NoticeSeverity = "info", key: str = "k", title: str = "t",
           body: str = "b", time: float = T0) -> Notice:
    return Notice(kind, severity, title, body, key, time)


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        notifier.stop()
        await asyncio.wait_for(task, WAIT_S)


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    receiver = await HttpReceiver().start()
    yield receiver
    await receiver.close()


async def test_json_webhook_carries_title_body_and_type(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url("json"),))])
    async with running(n):
        n.notify(notice("block.found", "info", title="Block 812345 found by bc1qminer.rig1", body="Hash 00ab"))
        n.notify(notice("node.down", "critical", key="http://node", title="Node down", body="not answering"))
        await http.until(lambda: len(http.answered) == 2)
    payloads = sorted((r.json() for r in http.answered), key=lambda p: p["title"])
    assert [p["title"] for p in payloads] == ["Block 812345 found by bc1qminer.rig1", "Node down"]
    assert [p["type"] for p in payloads] == ["info", "failure"]  # critical is apprise's "failure"
    assert payloads[0]["message"].startswith("Hash 00ab")
    assert "block.found · info ·" in payloads[0]["message"]  # what it is, and when (UTC)
    assert http.answered[0].method == "POST" and http.answered[0].path == "/hook"
    assert n.stats()[f"json://127.0.0.1:{http.port}/hook"].sent == 2


async def test_form_webhook(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url("form", "/form"),))])
    async with running(n):
        n.notify(notice("payout.failed", "warning", title="Payout batch 7 failed", body="wallet refused"))
        await http.until(lambda: len(http.answered) == 1)
    form = http.answered[0].form()
    assert form["title"] == "Payout batch 7 failed" and form["type"] == "warning"
    assert form["message"].startswith("wallet refused")
    assert http.answered[0].headers["content-type"].startswith("application/x-www-form-urlencoded")


async def test_email_to_a_local_smtp_server() -> None:
    smtp = SmtpReceiver().start()
    try:
        n = Notifier([NoticeRoute((smtp.url(),), kinds=("payout.*",))])
        async with running(n):
            n.notify(notice("payout.sent", title="Payout batch 3 sent: 0.5 BTC to 2 addresses",
                            body="txid 11aa\nbcrt1qa 0.25 BTC"))
            (mail,) = await smtp.until(1)
    finally:
        smtp.stop()
    assert mail["Subject"] == "Payout batch 3 sent: 0.5 BTC to 2 addresses"
    assert mail["To"] == "ops@example.com" and "pithead@example.com" in mail["From"]
    text = mail.get_body(preferencelist=("plain", "html")).get_content()  # type: ignore[union-attr]
    assert "txid 11aa" in text and "payout.sent" in text


async def test_routing_by_kind_and_severity() -> None:
    blocks, urgent, everything = [await HttpReceiver().start() for _ in range(3)]
    try:
        n = Notifier([
            NoticeRoute((blocks.url(),), kinds=("block.*",)),
            NoticeRoute((urgent.url(),), kinds=("node.*", "payout.failed"), min_severity="warning"),
            NoticeRoute((everything.url(), blocks.url()), kinds=("*",), min_severity="critical"),
        ])
        async with running(n):
            n.notify(notice("block.found", "info", key="b1", title="found"))
            n.notify(notice("block.orphaned", "warning", key="b2", title="orphaned"))
            n.notify(notice("node.back", "info", key="n", title="back"))  # below the node route's severity
            n.notify(notice("node.down", "critical", key="n", title="down"))  # urgent and everything
            n.notify(notice("payout.sent", "info", key="p", title="sent"))  # no route takes it
            n.notify(notice("farm.alert", "critical", key="f", title="farm"))  # everything, and blocks' URL
            assert await n.flush(WAIT_S)  # everything routed went out
        assert [r.json()["title"] for r in blocks.answered] == ["found", "orphaned", "down", "farm"]
        assert [r.json()["title"] for r in urgent.answered] == ["down"]
        assert [r.json()["title"] for r in everything.answered] == ["down", "farm"]
        assert n.unrouted == 2  # node.back (info) and payout.sent
    finally:
        for r in (blocks, urgent, everything):
            await r.close()


async def test_a_url_in_two_matching_routes_gets_the_notice_once(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url(),), kinds=("block.*",)), NoticeRoute((http.url(),), kinds=("*",))])
    async with running(n):
        n.notify(notice("block.found"))
        assert await n.flush(WAIT_S)
    assert len(http.answered) == 1


async def test_dedup_folds_repeats_in_the_window_and_says_so_after(http: HttpReceiver) -> None:
    now = [T0]
    n = Notifier([NoticeRoute((http.url(),))], window_s=600, clock=lambda: now[0])
    async with running(n):
        for t in (0, 10, 20, 599):  # the first is sent, the three repeats inside 600 s are folded
            now[0] = T0 + t
            n.notify(notice("node.down", "critical", key="http://node-a", title=f"down at {t}"))
        n.notify(notice("node.down", "critical", key="http://node-b", title="b down"))  # another node: sent
        n.notify(notice("node.back", "info", key="http://node-a", title="a back"))  # another kind: sent
        assert await n.flush(WAIT_S)
        now[0] = T0 + 600  # the window is over: the next repeat goes out, with what was folded into it
        n.notify(notice("node.down", "critical", key="http://node-a", title="down at 600"))
        await http.until(lambda: len(http.answered) == 4)
    titles = [r.json()["title"] for r in http.answered]
    assert titles == ["down at 0", "b down", "a back", "down at 600"]
    last = http.answered[-1].json()["message"]
    assert "(3 more like this since 2025-06-15 15:06:50 UTC were folded into this message.)" in last
    assert "folded" not in http.answered[0].json()["message"]
    assert n.dedup.folded == 3


async def test_retries_after_a_receiver_that_fails_twice() -> None:
    flaky = await HttpReceiver(fail_first=2).start()
    try:
        n = Notifier([NoticeRoute((flaky.url(),))], backoff_s=0.05)
        async with running(n):
            n.notify(notice(title="third time lucky"))
            await flaky.until(lambda: len(flaky.answered) == 1)
        assert len(flaky.requests) == 3 and flaky.answered[0].json()["title"] == "third time lucky"
        st = n.stats()[f"json://127.0.0.1:{flaky.port}/hook"]
        assert (st.sent, st.retried, st.failed) == (1, 2, 0)
    finally:
        await flaky.close()


async def test_a_destination_that_fails_every_attempt_is_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    dead = await HttpReceiver(fail_first=10**6).start()
    try:
        n = Notifier([NoticeRoute((dead.url(),))], attempts=2, backoff_s=0.01)
        async with running(n):
            for i in range(3):
                n.notify(notice(key=str(i), title=f"n{i}"))
            assert await n.flush(WAIT_S)
        st = n.stats()[f"json://127.0.0.1:{dead.port}/hook"]
        assert (st.sent, st.failed, st.retried) == (0, 3, 3) and len(dead.requests) == 6
        assert "Internal Server Error" in st.last_answer or "500" in st.last_answer, st.last_answer
        failures = [r for r in caplog.records if r.name == "pithead.notify.notifier" and "failed" in r.message]
        assert len(failures) == 1, [r.message for r in failures]  # the next two fall in the log interval
        assert f"127.0.0.1:{dead.port}" in failures[0].message
    finally:
        await dead.close()


async def test_a_hanging_or_refusing_destination_holds_no_one_else(http: HttpReceiver) -> None:
    hanging = await HttpReceiver(hang=True).start()
    refused = await HttpReceiver().start()
    await refused.close()  # nothing listens there any more: connection refused
    ticks = 0

    async def ticker() -> None:  # the event loop's other work: it must go on while a destination hangs
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    try:
        n = Notifier([NoticeRoute((hanging.url(), refused.url(), http.url()))], backoff_s=0.05, drain_s=0.5)
        async with running(n):
            n.notify(notice(title="first"))
            await hanging.until(lambda: hanging.holding == 1)  # its thread is stuck in the request now
            # The caller: notify() returns at once whatever the destinations do; the loop keeps running.
            for i in range(5):
                n.notify(notice(key=str(i), title=f"more {i}"))
            seen = ticks
            await http.until(lambda: len(http.answered) == 6)
            # the hanging destination has not been answered once: the good one did not wait for it
            assert hanging.holding >= 1 and not hanging.answered
            await until(lambda: ticks > seen + 3)  # nor did the loop (it ticked while we waited)
            assert [r.json()["title"] for r in http.answered] == ["first"] + [f"more {i}" for i in range(5)]
            refused_label = f"json://127.0.0.1:{refused.port}/hook"
            # the refused destination failed fast, every message, after its retries
            await until(lambda: n.stats()[refused_label].failed == 6)
            assert n.stats()[refused_label].sent == 0 and not hanging.answered
            hanging.release()
    finally:
        tick_task.cancel()
        await hanging.close()


async def test_a_flood_drops_the_oldest_and_counts_them(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url(),))], max_pending=5)
    async with running(n):
        for i in range(20):  # from the event loop, without yielding: nothing is routed meanwhile
            n.notify(notice(key=str(i), title=f"n{i}"))
        assert n.dropped == 15
        assert await n.flush(WAIT_S)
    assert [r.json()["title"] for r in http.answered] == [f"n{i}" for i in range(15, 20)]
    assert ("", "dropped", 15) in n.counts()


async def test_a_full_destination_queue_drops_its_oldest(http: HttpReceiver) -> None:
    http.hang = True
    n = Notifier([NoticeRoute((http.url(),))], max_pending_per_destination=2, drain_s=0.2)
    async with running(n):
        n.notify(notice(key="first", title="first"))
        await http.until(lambda: http.holding == 1)  # "first" is being delivered; the queue is empty
        for i in range(5):
            n.notify(notice(key=str(i), title=f"n{i}"))
        label = f"json://127.0.0.1:{http.port}/hook"
        await until(lambda: n.stats()[label].dropped == 3)  # n0..n2 dropped; n3 and n4 wait
        http.release()


async def test_notices_from_another_thread_are_delivered(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url(),))])
    async with running(n):
        await asyncio.to_thread(n.notify, notice(title="from a worker thread"))
        await http.until(lambda: len(http.answered) == 1)
    assert http.answered[0].json()["title"] == "from a worker thread"


async def test_notices_raised_before_the_start_go_out_once_it_runs(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url(),))])
    n.notify(notice(title="early"))
    async with running(n):
        await http.until(lambda: len(http.answered) == 1)


async def test_stop_delivers_what_is_queued(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url(),))])
    async with running(n):
        for i in range(3):
            n.notify(notice(key=str(i), title=f"n{i}"))
    # run() ended after stop(): what was queued went out first
    assert len(http.answered) == 3


async def test_the_counts_as_prometheus_metrics(http: HttpReceiver) -> None:
    n = Notifier([NoticeRoute((http.url(),))], max_pending=1)
    async with running(n):
        n.notify(notice(key="a"))
        n.notify(notice(key="b"))  # drops "a"
        assert await n.flush(WAIT_S)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NotifierCollector(n))
    text = generate_latest(registry).decode()
    assert f'pithead_notifications_total{{destination="json://127.0.0.1:{http.port}/hook",outcome="sent"}} 1.0' in text
    assert 'pithead_notifications_total{destination="",outcome="dropped"} 1.0' in text


# --- the config ----------------------------------------------------------------------------------------


def _cfg(**route: Any) -> config_mod.NotifyConfig:
    return config_mod.load(overrides={"notify": {"routes": [{"urls": ["json://127.0.0.1:1/x"], **route}]}}).notify


def test_routes_from_config_check_kinds_against_those_there_are() -> None:
    assert routes_from_config(_cfg(kinds=["block.*", "node.down"]))[0].kinds == ("block.*", "node.down")
    with pytest.raises(RouteError, match=r"'blocks\.\*' names no notice kind; did you mean 'block\.\*'\?"):
        routes_from_config(_cfg(kinds=["blocks.*"]))


@pytest.mark.parametrize(("route", "words"), [
    ({"urls": []}, "notify.routes[0].urls: is empty"),
    ({"urls": ["not a url"]}, "notify.routes[0].urls[0]: must be an apprise URL"),
    ({"kinds": []}, "notify.routes[0].kinds: is empty"),
    ({"kinds": ["Block Found"]}, "'Block Found' is not a notice kind or pattern"),
    ({"min_severity": "loud"}, "notify.routes[0].min_severity: must be 'info' or 'warning' or 'critical'"),
])
def test_config_refuses_bad_routes(route: dict[str, Any], words: str) -> None:
    with pytest.raises(config_mod.ConfigError) as info:
        _cfg(**route)
    assert words in str(info.value)


def test_config_ranges() -> None:
    with pytest.raises(config_mod.ConfigError, match=r"notify\.worker_quiet_minutes: must be 0"):
        config_mod.load(overrides={"notify": {"worker_quiet_minutes": -1}})
    with pytest.raises(config_mod.ConfigError, match=r"notify\.dedup_window: must be more than 0"):
        config_mod.load(overrides={"notify": {"dedup_window": 0}})


def test_a_url_apprise_cannot_use_is_a_config_error_without_its_secret() -> None:
    with pytest.raises(DestinationError) as info:
        Notifier.from_config(_cfg(urls=["nosuchscheme://SECRET-TOKEN@host"]))
    assert "notify.routes[0]" in str(info.value) and "nosuchscheme://" in str(info.value)
    assert "SECRET-TOKEN" not in str(info.value)


async def test_send_test_reports_what_each_destination_answered(http: HttpReceiver) -> None:
    refused = await HttpReceiver().start()
    await refused.close()
    cfg = config_mod.load(overrides={"notify": {"routes": [
        {"urls": [http.url()], "kinds": ["block.*"]},
        {"urls": [refused.url("form", "/x")], "min_severity": "critical"},
    ]}}).notify
    answers = await send_test(cfg, T0)
    assert [(a.route, a.ok) for a in answers] == [(0, True), (1, False)]
    assert answers[0].destination == f"json://127.0.0.1:{http.port}/hook"
    assert "Sent JSON POST notification" in answers[0].answer
    assert "error" in answers[1].answer.lower(), answers[1].answer
    sent = http.answered[0].json()
    assert sent["title"] == "pithead test notice" and "route 1 (block.*; info and above)" in sent["message"]
