"""The soak's report: build/soak/report.md and build/soak/soak.png (python3-matplotlib)."""

import datetime
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path

import load
from gwtest import SANITIZER_MARKERS


def ms(v, nd=1):
    return "-" if v is None else f"{v * 1000:.{nd}f}"


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.2f}"


def git_head(root):
    try:
        return subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def series(run, gw, key):
    """(minutes, values) of one sampled quantity of one gateway."""
    xs, ys = [], []
    for r in run.samples:
        v = r["gw"][gw]
        if key in ("rss_kib", "fds"):
            val = (v["proc"] or {}).get(key)
            if val is not None and key == "rss_kib":
                val = val / 1024
        else:
            val = (v["metrics"] or {}).get(key)
        xs.append((r["t"] - run.t_load) / 60)
        ys.append(val)
    return xs, ys


def plot(path, run):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rel, asan = run.gws[0].name, run.gws[1].name
    fig, axes = plt.subplots(4, 1, figsize=(12, 12), sharex=True)
    ax = axes[0]
    x, y = series(run, rel, "rss_kib")
    ax.plot(x, y, color="tab:blue", label=f"{rel} RSS (master + workers)")
    for label, color in (("baseline", "tab:green"), ("final", "tab:purple")):
        m = run.measures.get(label)
        if m and m["gw"][rel]["rss_kib"]:
            ax.axhline(m["gw"][rel]["rss_kib"] / 1024, color=color, lw=0.8, ls="--",
                       label=f"{label} {m['gw'][rel]['rss_kib'] / 1024:.1f} MiB")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    x, y = series(run, asan, "rss_kib")
    ax2.plot(x, y, color="grey", lw=0.7, ls=":", label=f"{asan} RSS (ASan, not judged)")
    ax2.set_ylabel("MiB (asan)")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)
    ax.set_title("gateway memory")

    ax = axes[1]
    xs = [(r["t"] - run.t_load) / 60 for r in run.samples]
    p50 = [r["p50"] * 1000 if r["p50"] is not None else None for r in run.samples]
    p99 = [r["p99"] * 1000 if r["p99"] is not None else None for r in run.samples]
    ax.plot(xs, p50, label="p50", color="tab:green")
    ax.plot(xs, p99, label="p99", color="tab:red")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"delivery latency per {run.p['sample']:g} s interval (client send to "
                 "client receipt)")

    ax = axes[2]
    for g, color in ((rel, "tab:blue"), (asan, "tab:orange")):
        x, y = series(run, g, "chat_websockets_open")
        ax.plot(x, y, color=color, label=f"{g} chat_websockets_open")
    ax.plot(xs, [sum(r["clients"].values()) for r in run.samples], color="black", lw=0.8,
            label="client sessions (both)")
    ax.set_ylabel("connections")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("connections")

    ax = axes[3]
    for g, color in ((rel, "tab:blue"), (asan, "tab:orange")):
        x, y = series(run, g, "fds")
        ax.plot(x, y, color=color, label=f"{g} open descriptors (master + workers)")
    ax.set_ylabel("descriptors")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("minutes since the load started")

    colors = {"redis restart": "tab:red"}
    for a in axes:
        for w in run.windows.windows:
            end = w["end"] if w["end"] is not None else w["start"]
            a.axvspan((w["start"] - run.t_load) / 60, (end - run.t_load) / 60,
                      color=colors.get(w["kind"], "tab:cyan"), alpha=0.25, lw=0)
        for name, t0, t1 in run.phases:
            if name in ("baseline", "final"):
                a.axvspan((t0 - run.t_load) / 60, (t1 - run.t_load) / 60, color="tab:green",
                          alpha=0.08, lw=0)
    axes[0].text(0.01, 0.03, "shaded: red = Redis restart, cyan = asan gateway restart, "
                 "green = quiet measurement", transform=axes[0].transAxes, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(out, run, loss, logs, res, ok, t_start, counters):
    out = Path(out)
    lg, p = run.ledger, run.p
    rel, asan = run.gws[0].name, run.gws[1].name
    png = out / "soak.png"
    plotted = plot(png, run)
    L = []
    add = L.append
    dur = (run.t_final - run.t_load) / 60
    add("# chatbroker soak report\n")
    add(f"**{'PASSED' if ok else 'FAILED'}**: {sum(1 for r in res if r[1])} of {len(res)} "
        f"checks passed. Started {datetime.datetime.fromtimestamp(t_start):%Y-%m-%d %H:%M:%S}, "
        f"{p['minutes']:g} minutes asked, {dur:.1f} minutes of load before the final quiet "
        f"period. Source: `{git_head(Path(__file__).resolve().parents[2])}` "
        f"(working tree as built). Machine: {os.cpu_count()} CPUs, "
        f"{platform.platform()}, shared with other work.\n")
    add("## Set-up\n")
    add(f"- redis-server on a Unix socket (`{run.redis.url}`), no persistence, no TCP port.")
    add(f"- `{rel}`: build/release/chat-gateway on 127.0.0.1:{run.gws[0].port}; its RSS is "
        "what the memory check judges. Never restarted: one process for the whole run.")
    add(f"- `{asan}`: build/debug/chat-gateway (ASan + UBSan, `detect_leaks=1`) on "
        f"127.0.0.1:{run.gws[1].port}; restarted by the faults; every log it wrote is checked "
        "for sanitizer reports, and each exit (LeakSanitizer runs then) must be status 0.")
    bins = p.get("binaries", {})
    add(f"- binaries: {bins.get(rel, '?')}; {bins.get(asan, '?')}; copied to "
        "`build/soak/run/bin/` at the start, so a rebuild during the run changes nothing.")
    add("- both: `--workers 2 --drain-timeout 4s --close-timeout 2s`, the default limits "
        "(`--rate 20`, `--burst 40`, ...).")
    add(f"- {p['clients']} client slots (python3-websockets, one asyncio process), half on "
        f"each gateway as home (the other when home refuses), half offering "
        f"permessage-deflate; {p['rooms']} rooms of about {p['clients'] // p['rooms']} members "
        f"(each client leaves `lobby` for its room); every {p['sender_every']}rd client sends "
        f"one numbered message every {p['send_interval']:g} s to its room "
        f"({p['clients'] // p['sender_every'] / p['send_interval']:.0f} messages/s in all); "
        f"sessions live {p['life_min']}-{p['life_max']} s then close (60% close handshake, "
        f"25% TCP RST, 15% FIN without close frame) and reconnect; `who` every "
        f"~{p['who_every']} s, a `direct` to a random connected client every "
        f"~{p['direct_every']} s, a join of one of {p['extra_rooms']} extra rooms every "
        f"~{p['extra_every']} s (left ~{p['extra_stay']} s later), per client.")
    add(f"- faults: the first {p['fault_first']} s after the baseline, then every "
        f"{p['fault_every']} s, alternating a Redis restart (SIGTERM, {p['redis_down']:g} s "
        f"down, started again on the same socket; the window ends when every gateway's "
        f"/healthz is 200 again) and an `{asan}` gateway restart (SIGTERM: drain with close "
        f"1001, exit, start on the same port; the window ends when it is ready). Loss is "
        f"allowed for messages sent from {load.FaultWindows.PRE:g} s before a window to "
        f"{load.FaultWindows.POST:g} s after it.\n")

    add("## Checks\n")
    add("| check | result | detail |")
    add("|---|---|---|")
    for name, good, detail in res:
        add(f"| {name} | {'PASS' if good else '**FAIL**'} | {detail} |")
    add("")

    add("## Memory and descriptors\n")
    add("Baseline: after the warm-up, traffic stopped, every client on its home gateway in its "
        "own room only, gateways agreeing (`chat_websockets_open`), then "
        f"{p['baseline_quiet']} s quiet; the median of 5 samples 1 s apart. Final: the same "
        f"state after the last fault and {p['final_quiet']} s quiet. Idle: no client at all "
        "(before the first client; after the last left).\n")
    add("| | idle start | baseline | final | idle end | max during the run |")
    add("|---|---|---|---|---|---|")
    m = run.measures
    for g in (rel, asan):
        _, ys = series(run, g, "rss_kib")
        mx = max((y for y in ys if y is not None), default=None)
        add(f"| {g} RSS MiB{' (ASan: informational)' if g == asan else ''} | "
            f"{mib(m.get('idle_start', {}).get(g, {}).get('rss_kib'))} | "
            f"{mib(m.get('baseline', {}).get('gw', {}).get(g, {}).get('rss_kib'))} | "
            f"{mib(m.get('final', {}).get('gw', {}).get(g, {}).get('rss_kib'))} | "
            f"{mib(m.get('idle_end', {}).get(g, {}).get('rss_kib'))} | "
            f"{'-' if mx is None else f'{mx:.2f}'} |")
    for g in (rel, asan):
        _, ys = series(run, g, "fds")
        mx = max((y for y in ys if y is not None), default=None)
        add(f"| {g} descriptors | {m.get('idle_start', {}).get(g, {}).get('fds')} | "
            f"{m.get('baseline', {}).get('gw', {}).get(g, {}).get('fds')} | "
            f"{m.get('final', {}).get('gw', {}).get(g, {}).get('fds')} | "
            f"{m.get('idle_end', {}).get(g, {}).get('fds')} | {mx} |")
    for g in (rel, asan):
        add(f"| {g} WebSocket sessions | 0 | "
            f"{m.get('baseline', {}).get('gw', {}).get(g, {}).get('ws')} | "
            f"{m.get('final', {}).get('gw', {}).get(g, {}).get('ws')} | 0 | |")
    add("")
    b, f = m.get("baseline"), m.get("final")
    if b and f:
        add(f"RSS samples ({rel}, KiB): baseline {b['gw'][rel]['rss_all']}, final "
            f"{f['gw'][rel]['rss_all']}. Clients settled on their home gateways "
            f"{b['settle_s']:.1f} s and {f['settle_s']:.1f} s after the traffic stopped.\n")

    add("## Traffic\n")
    closes = dict(lg.closes)
    add(f"- sessions opened (welcome, room joined): **{lg.connects}**; ended by the clients: "
        f"{closes.get('clean', 0)} close handshakes, {closes.get('abort', 0)} TCP resets, "
        f"{closes.get('fin', 0)} FINs without close frame; ended by a gateway: "
        f"{len(lg.server_closes)} (codes {dict(Counter(c for _, _, c in lg.server_closes))}); "
        f"connects that failed: {len(lg.connect_failures)}; joins whose own presence `join` "
        f"never came (within {load.OPEN_TIMEOUT:g} s): {len(lg.join_timeouts)} (all inside "
        "fault windows unless a check says otherwise).")
    add(f"- room messages sent: **{loss['sent']}**; deliveries received: **{lg.delivered}**; "
        f"deliveries required by the check: {loss['required']} over {loss['memberships']} "
        f"memberships; lost inside fault windows: {loss['missing_inside']}, outside: "
        f"**{loss['missing_outside']}**; out of order or duplicated: {loss['disorder']}; "
        f"received after the receiver left the room (allowed): {lg.stray}.")
    add(f"- direct messages sent: {loss['direct_sent']}, delivered: {lg.direct_delivered}, "
        f"required: {loss['direct_required']}, lost inside fault windows: "
        f"{loss['direct_missing_inside']}, outside: **{loss['direct_missing_outside']}**.")
    wl = sorted(lg.who_latency)
    add(f"- `who` asked: {lg.who_asked}, answered with the asker listed: {lg.who_ok} "
        f"(p50 {ms(load.quantile(wl, 0.5))} ms, p99 {ms(load.quantile(wl, 0.99))} ms), "
        f"unanswered within {load.WHO_TIMEOUT:.0f} s: {len(lg.who_timeouts)}; `members` "
        f"frames: {lg.members_frames}; presence events: {lg.presence}.")
    errs_in = Counter(c for t, c, _ in lg.errors if run.windows.inside(t))
    errs_out = Counter(c for t, c, _ in lg.errors if not run.windows.inside(t))
    add(f"- error replies inside fault windows: {dict(errs_in) or 'none'}; outside: "
        f"{dict(errs_out) or 'none'}.")
    ct = counters
    add(f"- gateway counters (both, every generation): deliveries "
        f"{ct.get('chat_deliveries_total', 0):.0f}, dropped {ct.get('chat_dropped_total', 0):.0f}, "
        f"Redis reconnects {ct.get('chat_redis_reconnects_total', 0):.0f}, publish errors "
        f"{ct.get('chat_redis_publish_errors_total', 0):.0f}, probes lost "
        f"{ct.get('chat_redis_probes_lost_total', 0):.0f}.\n")

    add("## Latency\n")
    outside = Counter()
    for (t, n, _, _, _, hist) in lg.intervals:
        t_from = t - p["sample"]
        if not any(w["start"] - load.FaultWindows.PRE <= t and
                   (w["end"] or t) + load.FaultWindows.POST >= t_from
                   for w in run.windows.windows):
            outside.update(hist)
    h = lg.lat_hist
    add("Client send to client receipt, every room and direct delivery (one monotonic clock: "
        "the clients live in one process; includes that process's own scheduling).\n")
    add("| | deliveries | p50 ms | p99 ms | p99.9 ms | max ms |")
    add("|---|---|---|---|---|---|")
    mx_all = max((r[4] for r in lg.intervals if r[4] is not None), default=None)
    for name, hh, mx in (("whole run", h, mx_all), ("intervals clear of fault windows",
                                                     outside, None)):
        add(f"| {name} | {sum(hh.values())} | {ms(load.hist_quantile(hh, 0.5), 2)} | "
            f"{ms(load.hist_quantile(hh, 0.99), 2)} | {ms(load.hist_quantile(hh, 0.999), 2)} | "
            f"{ms(mx) if mx is not None else ms(load.hist_quantile(hh, 1.0))} |")
    p99s = sorted(r[3] for r in lg.intervals if r[3] is not None)
    add(f"\nPer-interval p99 ({p['sample']:g} s intervals): median {ms(load.quantile(p99s, 0.5))}"
        f" ms, worst {ms(p99s[-1] if p99s else None)} ms.\n")

    add("## Fault windows\n")
    add("| # | fault | start s | end s | length s | room deliveries lost | directs lost | detail |")
    add("|---|---|---|---|---|---|---|---|")
    for i, w in enumerate(run.windows.windows):
        end = w["end"] if w["end"] is not None else float("nan")
        add(f"| {i + 1} | {w['kind']} | {w['start'] - run.t_load:.1f} | {end - run.t_load:.1f} | "
            f"{end - w['start']:.1f} | {loss['by_window'].get(i, 0)} | "
            f"{loss['direct_by_window'].get(i, 0)} | {w['detail']} |")
    add("")
    if loss["examples"]:
        add("Examples of what the checks found:\n")
        for e in loss["examples"]:
            add(f"- {e}")
        add("")

    add("## Logs\n")
    add(f"Sanitizer markers ({', '.join(load_markers())}): "
        f"{'; '.join(logs['sanitizer']) or 'none'}. ERROR lines: {logs['errors']}"
        + (" (e.g. " + "; ".join(f"`{e}`" for e in logs["error_examples"][:3]) + ")"
           if logs["error_examples"] else "") + ". Logs kept in "
        + ", ".join(f"`{x}`" for x in logs["logs"][:12]) + ".\n")
    if plotted:
        add("## Over time\n")
        add("![RSS, latency, connections and descriptors over the run](soak.png)\n")
    else:
        add("No plot: python3-matplotlib is not installed (`make deps-soak`).\n")
    add("Reproduce: `make soak` (20 minutes), `make soak SOAK_MINUTES=N`, "
        "`make soak SOAK_ARGS=--quick` (3 minutes); see tests/soak/README.md.")
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


def load_markers():
    return SANITIZER_MARKERS
