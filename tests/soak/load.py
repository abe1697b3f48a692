"""The soak's clients and their bookkeeping.

Slot: one simulated user. It connects (its home gateway first, the other when that fails, as
a load balancer would), says hello, leaves `lobby` for its own room, lives for a random time
(sending numbered messages if it is a sender, asking `who`, sending `direct` messages,
joining and leaving an extra room now and then), then goes away: a clean close, an abrupt
one (TCP RST) or a FIN without a close frame; and comes back. Forever, until the run stops.

Ledger: everything sent and received. Room messages carry "<sender session>|<seq>|<send
time>", so every receiver checks order per sender as frames arrive, latency is measured on
one monotonic clock (client send to client receipt, through gateway, Redis and gateway),
and at the end each membership (a session in a room, from the presence event that proves
its subscription to its leave or close) is checked against what every sender sent to that
room meanwhile. Direct messages the same way, per target session.

Every loop is bounded in count and every wait in time.
"""

import asyncio
import bisect
import json
import math
import random
import socket
import struct
import time
from array import array
from collections import Counter

import websockets
from websockets.exceptions import ConnectionClosed

from chattest import ChatClient, frame_dict, is_presence

# A message counts as required for a receiver only when it was sent at least this long
# before the receiver left or closed (it may be in flight when the receiver goes).
END_MARGIN = 2.0
# Senders stop sending this long before they leave, so nothing they send is cut off.
SENDER_QUIESCE = 1.0
WHO_TIMEOUT = 5.0
OPEN_TIMEOUT = 10.0
INBOX_MAX = 200

# Latency histogram: log buckets 2% wide from 10 us.
_LB = math.log(1.02)


def lat_bucket(seconds):
    if seconds <= 1e-5:
        return 0
    return int(math.log(seconds / 1e-5) / _LB) + 1


def bucket_value(b):
    return 1e-5 * math.exp(_LB * b) if b else 1e-5


def hist_quantile(hist, q):
    n = sum(hist.values())
    if n == 0:
        return None
    want = q * (n - 1)
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen > want:
            return bucket_value(b)
    return bucket_value(max(hist))


def quantile(sorted_xs, q):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, int(q * (len(sorted_xs) - 1) + 0.5))]


class FaultWindows:
    """Announced fault windows [start, end]; loss is allowed in [start - PRE, end + POST]."""

    PRE = 0.5
    POST = 3.0

    def __init__(self):
        self.windows = []  # dicts: kind, start, end, detail

    def open(self, kind, detail=""):
        w = {"kind": kind, "start": time.monotonic(), "end": None, "detail": detail}
        self.windows.append(w)
        return w

    def which(self, t):
        """Index of the window (with its margins) holding t, or None."""
        for i, w in enumerate(self.windows):
            end = w["end"] if w["end"] is not None else math.inf
            if w["start"] - self.PRE <= t <= end + self.POST:
                return i
        return None

    def inside(self, t):
        return self.which(t) is not None


class SenderLog:
    """What one session sent to one room: the send time of each seq (seq = index + 1)."""

    __slots__ = ("key", "room", "times")

    def __init__(self, key, room):
        self.key = key
        self.room = room
        self.times = array("d")


class Membership:
    """One session in one room, from its join request to its leave or close."""

    __slots__ = ("sess", "room", "t_req", "t_join", "t_end", "recv", "disorder", "example")

    def __init__(self, sess, room):
        self.sess = sess
        self.room = room
        self.t_req = time.monotonic()
        self.t_join = None  # own presence join seen: the subscription is proven
        self.t_end = None
        self.recv = {}  # sender key -> [first seq, last seq, count, gaps [(a, b)] or None]
        self.disorder = 0
        self.example = None

    def on_msg(self, k, seq):
        r = self.recv.get(k)
        if r is None:
            self.recv[k] = [seq, seq, 1, None]
            return
        if seq > r[1]:
            if seq > r[1] + 1:
                if r[3] is None:
                    r[3] = []
                r[3].append((r[1] + 1, seq - 1))
            r[1] = seq
            r[2] += 1
            return
        self.disorder += 1
        if self.example is None:
            self.example = f"seq {seq} of sender {k} after {r[1]} in {self.room}"

    def missing_seqs(self, k, lo, hi):
        """Seqs in [lo, hi] (1-based, inclusive) not received from sender k."""
        r = self.recv.get(k)
        if r is None:
            return range(lo, hi + 1)
        out = list(range(lo, min(hi, r[0] - 1) + 1))
        out += range(max(lo, r[1] + 1), hi + 1)
        for a, b in r[3] or ():
            out += range(max(a, lo), min(b, hi) + 1)
        return out


class Session:
    """One WebSocket session of a slot."""

    def __init__(self, ledger, slot, gateway):
        ledger.n_sessions += 1
        self.key = ledger.n_sessions
        self.ledger = ledger
        self.slot = slot
        self.gateway = gateway  # the gateway object it connected to
        self.client = None
        self.id = None
        self.t_open = None
        self.t_end = None
        self.ended = asyncio.Event()
        self.memberships = {}  # room -> current Membership
        self.pending_who = {}  # room -> time asked
        self.senders = {}  # room -> SenderLog
        self.close_code = None

    # -- frames, from the reader task --

    def on_frame(self, f):
        """True when the frame is consumed here (not kept in the client's inbox)."""
        t = f.get("type")
        lg = self.ledger
        if t == "message":
            lg.on_room_message(self, f)
            return True
        if t == "direct":
            lg.on_direct(self, f)
            return True
        if t == "presence":
            lg.presence += 1
            if f.get("client") != self.id:
                return True
            m = self.memberships.get(f.get("room"))
            if f.get("event") == "join" and m is not None and m.t_join is None:
                m.t_join = time.monotonic()
            return False
        if t == "members":
            lg.members_frames += 1
            room = f.get("room")
            if room in self.pending_who and any(
                    isinstance(x, dict) and x.get("client") == self.id
                    for x in f.get("members") or ()):
                lg.who_latency.append(time.monotonic() - self.pending_who.pop(room))
                lg.who_ok += 1
            return True
        if t == "error":
            lg.on_error(self, f)
            return True
        return False

    def on_reader_end(self, closed):
        if self.t_end is None:
            self.t_end = time.monotonic()
            rcvd = getattr(closed, "rcvd", None)
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.ledger.server_closes.append((self.t_end, self.gateway.name, self.close_code))
        self.ended.set()

    # -- life --

    @property
    def alive(self):
        return self.t_end is None and self.client is not None and self.client.ws.open

    async def send(self, obj):
        await self.client.ws.send(json.dumps(obj, separators=(",", ":")))

    async def join(self, room, timeout=OPEN_TIMEOUT):
        m = Membership(self, room)
        self.memberships[room] = m
        self.ledger.memberships.append(m)
        await self.send({"type": "join", "room": room})
        try:
            await self.client.take(is_presence(room, "join", self.id), timeout,
                                   f"own presence join of {room}")
        except AssertionError:
            if self.client.closed is None:  # open, but the join was never announced
                self.ledger.join_timeouts.append((m.t_req, self.gateway.name, room))
            raise
        if m.t_join is None:
            m.t_join = time.monotonic()

    async def leave(self, room):
        m = self.memberships.pop(room, None)
        if m is not None:
            m.t_end = time.monotonic()
        await self.send({"type": "leave", "room": room})

    def end_memberships(self, t):
        for m in self.memberships.values():
            if m.t_end is None:
                m.t_end = t
        self.memberships = {}


class SoakClient(ChatClient):
    """chattest's ChatClient whose reader hands chat traffic to the session at once and keeps
    only the rest (welcome, own presence), in a bounded inbox."""

    def __init__(self, ws, name, sess):
        self.sess = sess
        super().__init__(ws, name)

    async def _read(self):
        try:
            for _ in range(1_000_000_000):
                f = frame_dict(await self.ws.recv())
                if self.sess.on_frame(f):
                    continue
                self.inbox.append(f)
                if len(self.inbox) > INBOX_MAX:
                    del self.inbox[0]
                self._changed.set()
        except ConnectionClosed as e:
            self.closed = e
        except Exception as e:  # a bug of ours: counted, never silent
            self.sess.ledger.bugs.append(repr(e)[:300])
            self.closed = e
        finally:
            self._changed.set()
            self.sess.on_reader_end(self.closed)


class Ledger:
    def __init__(self, windows):
        self.windows = windows
        self.n_sessions = 0
        self.open_sessions = {}  # key -> Session with a welcome, not ended
        self.memberships = []
        self.room_senders = {}  # room -> [SenderLog]
        self.directs = {}  # dkey -> [t_sent, from key, target Session, got count]
        self.n_directs = 0
        self.delivered = 0
        self.direct_delivered = 0
        self.stray = 0
        self.misdirected = 0
        self.presence = 0
        self.members_frames = 0
        self.who_asked = 0
        self.who_ok = 0
        self.who_timeouts = []  # times asked
        self.who_latency = []
        self.errors = []  # (t, code, gateway name)
        self.connects = 0
        self.connect_failures = []  # (t of the step that failed, gateway name, reason)
        self.join_timeouts = []  # (t sent, gateway name, room): no own presence join came
        self.closes = Counter()  # how our clients ended sessions
        self.server_closes = []  # (t, gateway name, code): sessions the server ended
        self.bugs = []
        self.lat_cur = []
        self.lat_hist = Counter()  # every room delivery
        self.intervals = []  # (t, n, p50, p99, max, hist)

    # -- receipt --

    def on_room_message(self, sess, f):
        now = time.monotonic()
        self.delivered += 1
        try:
            k, seq, t = f["message"].split("|")
            k, seq, t = int(k), int(seq), float(t)
        except (KeyError, ValueError, AttributeError):
            self.bugs.append(f"unexpected room message {str(f)[:200]}")
            return
        self.lat_cur.append(now - t)
        m = sess.memberships.get(f.get("room"))
        if m is None:
            self.stray += 1
            return
        m.on_msg(k, seq)

    def on_direct(self, sess, f):
        now = time.monotonic()
        self.direct_delivered += 1
        try:
            _, dkey, t = f["message"].split("|")
            dkey, t = int(dkey), float(t)
        except (KeyError, ValueError, AttributeError):
            self.bugs.append(f"unexpected direct {str(f)[:200]}")
            return
        rec = self.directs.get(dkey)
        if rec is None or rec[2] is not sess or f.get("to") != sess.id:
            self.misdirected += 1
            return
        rec[3] += 1
        self.lat_cur.append(now - t)

    def on_error(self, sess, f):
        self.errors.append((time.monotonic(), f.get("code"), sess.gateway.name))

    # -- sending --

    def sender_log(self, sess, room):
        s = sess.senders.get(room)
        if s is None:
            s = sess.senders[room] = SenderLog(sess.key, room)
            self.room_senders.setdefault(room, []).append(s)
        return s

    async def send_room(self, sess, room):
        s = self.sender_log(sess, room)
        t = time.monotonic()
        seq = len(s.times) + 1
        s.times.append(t)
        try:
            await sess.send({"type": "message", "room": room, "message": f"{sess.key}|{seq}|{t:.6f}"})
        except ConnectionClosed:
            s.times.pop()

    async def send_direct(self, sess, target):
        self.n_directs += 1
        dkey = self.n_directs
        t = time.monotonic()
        self.directs[dkey] = [t, sess.key, target, 0]
        try:
            await sess.send({"type": "direct", "to": target.id, "message": f"d|{dkey}|{t:.6f}"})
        except ConnectionClosed:
            del self.directs[dkey]

    # -- intervals --

    def rotate(self, t):
        xs = sorted(self.lat_cur)
        self.lat_cur = []
        hist = Counter(lat_bucket(x) for x in xs)
        self.lat_hist.update(hist)
        row = (t, len(xs), quantile(xs, 0.5), quantile(xs, 0.99), xs[-1] if xs else None, hist)
        self.intervals.append(row)
        return row

    # -- the end --

    def check(self, t_final):
        """Loss, order and duplicates over every membership and direct message."""
        which = self.windows.which
        by_window = Counter()
        out = {"by_window": by_window, "direct_by_window": Counter(),
               "memberships": 0, "required": 0, "missing_inside": 0, "missing_outside": 0,
               "disorder": 0, "examples": [], "sent": 0,
               "direct_sent": len(self.directs), "direct_required": 0,
               "direct_missing_inside": 0, "direct_missing_outside": 0, "direct_dup": 0}
        for senders in self.room_senders.values():
            out["sent"] += sum(len(s.times) for s in senders)
        for m in self.memberships:
            if m.t_join is None:
                continue
            end = (m.t_end if m.t_end is not None else t_final) - END_MARGIN
            out["memberships"] += 1
            out["disorder"] += m.disorder
            if m.example and len(out["examples"]) < 10:
                out["examples"].append(f"order: session {m.sess.key} on {m.sess.gateway.name}: "
                                       f"{m.example}")
            for s in self.room_senders.get(m.room, ()):
                if not s.times or s.times[0] >= end or s.times[-1] <= m.t_join:
                    continue
                lo = bisect.bisect_right(s.times, m.t_join)
                hi = bisect.bisect_left(s.times, end)
                if lo >= hi:
                    continue
                out["required"] += hi - lo
                for seq in m.missing_seqs(s.key, lo + 1, hi):
                    t = s.times[seq - 1]
                    i = which(t)
                    if i is not None:
                        by_window[i] += 1
                        out["missing_inside"] += 1
                    else:
                        out["missing_outside"] += 1
                        if len(out["examples"]) < 10:
                            out["examples"].append(
                                f"loss: session {m.sess.key} on {m.sess.gateway.name} in "
                                f"{m.room} (joined {m.t_join:.1f}, end {end + END_MARGIN:.1f}) "
                                f"missed seq {seq} of sender {s.key} sent at {t:.2f}")
        for dkey, (t, _, target, got) in self.directs.items():
            if got > 1:
                out["direct_dup"] += got - 1
            if target.t_open is None or t < target.t_open:
                continue
            end = (target.t_end if target.t_end is not None else t_final) - END_MARGIN
            if t >= end:
                continue
            out["direct_required"] += 1
            if got == 0:
                i = which(t)
                if i is not None:
                    out["direct_by_window"][i] += 1
                    out["direct_missing_inside"] += 1
                else:
                    out["direct_missing_outside"] += 1
                    if len(out["examples"]) < 10:
                        out["examples"].append(f"direct loss: {dkey} sent at {t:.2f} to session "
                                               f"{target.key} on {target.gateway.name}")
        return out


# ---------------------------------------------------------------------------------------------
# the simulated users


class State:
    """What the run wants now: mode "run" (traffic), "quiet" (no traffic; every slot on its
    home gateway in its own room only), "stop" (every slot goes away)."""

    def __init__(self):
        self.mode = "run"
        self.changed = asyncio.Event()

    def set(self, mode):
        self.mode = mode
        self.changed.set()
        self.changed = asyncio.Event()


class Slot:
    def __init__(self, idx, home, other, room, cfg, ledger, state, connect_sem, extra_rooms):
        self.idx = idx
        self.home = home
        self.other = other
        self.room = room
        self.cfg = cfg
        self.ledger = ledger
        self.state = state
        self.sem = connect_sem
        self.extra_rooms = extra_rooms
        self.sender = cfg["sender_every"] > 0 and idx % cfg["sender_every"] == 0
        self.deflate = idx % 2 == 1
        self.sess = None
        self.settled = False  # quiet mode: on the home gateway, own room only
        self.rng = random.Random(idx * 7919 + 1)

    # -- connecting --

    async def connect(self, gw):
        lg = self.ledger
        sess = Session(lg, self, gw)
        url = f"ws://127.0.0.1:{gw.port}/ws"
        t_step = time.monotonic()  # when the step that may fail began (for fault windows)
        try:
            async with self.sem:
                ws = await websockets.connect(
                    url, ping_interval=None, open_timeout=OPEN_TIMEOUT, close_timeout=2,
                    max_size=1 << 20, max_queue=None,
                    compression="deflate" if self.deflate else None)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
            lg.connect_failures.append((t_step, gw.name, repr(e)[:300]))
            return None
        sess.client = SoakClient(ws, f"s{self.idx}", sess)
        try:
            first = await sess.client.next(OPEN_TIMEOUT, "welcome")
            if first.get("type") != "welcome":
                raise AssertionError(f"first frame is not welcome: {first}")
            sess.id = first.get("id")
            sess.t_open = time.monotonic()
            lg.open_sessions[sess.key] = sess
            await sess.send({"type": "hello", "username": f"soak-{self.idx}",
                             "email": f"soak{self.idx}@example.org"})
            await sess.send({"type": "leave", "room": "lobby"})
            t_step = time.monotonic()
            await sess.join(self.room)
        except (AssertionError, ConnectionClosed, OSError) as e:
            lg.connect_failures.append((t_step, gw.name, repr(e)[:300]))
            await self.finish(sess, "failed")
            return None
        lg.connects += 1
        return sess

    async def finish(self, sess, how):
        """End the session our way: clean close, RST or FIN; or just collect a server close."""
        now = time.monotonic()
        sess.end_memberships(sess.t_end if sess.t_end is not None else now)
        self.ledger.open_sessions.pop(sess.key, None)
        c = sess.client
        if sess.t_end is None:
            sess.t_end = now
            self.ledger.closes[how] += 1
            if how in ("abort", "fin"):
                tr = c.ws.transport
                if how == "abort":
                    sock = tr.get_extra_info("socket")
                    if sock is not None:
                        try:
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                            struct.pack("ii", 1, 0))
                        except OSError:
                            pass
                    tr.abort()
                else:
                    tr.close()
        await c.close()
        sess.ended.set()

    # -- the loop --

    async def run(self):
        attempt = 0
        for _ in range(10_000_000):
            mode = self.state.mode
            if mode == "stop":
                return
            gw = self.home if (mode == "quiet" or attempt % 2 == 0) else self.other
            sess = await self.connect(gw)
            if sess is None:
                attempt += 1
                await asyncio.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * self.rng.uniform(0.5, 1))
                continue
            attempt = 0
            self.sess = sess
            try:
                how = await self.live(sess)
            finally:
                self.sess = None
                self.settled = False
            await self.finish(sess, how)
            if how != "server":
                await asyncio.sleep(self.rng.uniform(0.05, 0.5))

    def lifetime(self):
        return self.rng.uniform(self.cfg["life_min"], self.cfg["life_max"])

    def expo(self, mean):
        return self.rng.expovariate(1.0 / mean) if mean > 0 else math.inf

    async def live(self, sess):
        """Until the session should end; returns how to end it."""
        cfg, lg, rng = self.cfg, self.ledger, self.rng
        now = time.monotonic()
        t_end = now + self.lifetime()
        interval = cfg["send_interval"]
        next_send = now + rng.uniform(0, interval) if self.sender else math.inf
        next_who = now + self.expo(cfg["who_every"])
        next_direct = now + self.expo(cfg["direct_every"])
        next_extra = now + self.expo(cfg["extra_every"])
        extra_until = math.inf
        paused_at = None
        for _ in range(100_000_000):
            if sess.t_end is not None or not sess.client.ws.open:
                return "server"
            mode = self.state.mode
            if mode == "stop":
                return "clean"
            if mode == "quiet":
                for room in [r for r in sess.memberships if r != self.room]:
                    await self._try(sess.leave(room))
                if next_extra == math.inf:
                    next_extra = time.monotonic() + self.expo(cfg["extra_every"])
                extra_until = math.inf
                if sess.gateway is not self.home:
                    return "clean"
                self.settled = True
                if paused_at is None:
                    paused_at = time.monotonic()
                await self._wait(sess, 1.0)
                continue
            self.settled = False
            now = time.monotonic()
            if paused_at is not None:  # the session's life goes on where the pause stopped it
                shift = now - paused_at
                t_end += shift
                next_who += shift
                next_direct += shift
                next_extra += shift
                paused_at = None
                next_send = now + rng.uniform(0, interval) if self.sender else math.inf
            if now >= t_end:
                r = rng.random()
                return "clean" if r < 0.6 else ("abort" if r < 0.85 else "fin")
            for room, t in list(sess.pending_who.items()):
                if now - t > WHO_TIMEOUT:
                    del sess.pending_who[room]
                    lg.who_timeouts.append(t)
            if now >= next_send:
                if now < t_end - SENDER_QUIESCE:
                    await self._try(lg.send_room(sess, self.room))
                next_send += interval
                if next_send < now - 1.0:  # we were stalled: no burst to catch up
                    next_send = now + interval
            if now >= next_who:
                next_who = now + self.expo(cfg["who_every"])
                room = rng.choice(list(sess.memberships))
                if room not in sess.pending_who and now < t_end - WHO_TIMEOUT:
                    sess.pending_who[room] = time.monotonic()
                    lg.who_asked += 1
                    await self._try(sess.send({"type": "who", "room": room}))
            if now >= next_direct:
                next_direct = now + self.expo(cfg["direct_every"])
                targets = [s for s in lg.open_sessions.values()
                           if s is not sess and s.id and s.t_end is None]
                if targets and now < t_end - SENDER_QUIESCE:
                    await self._try(lg.send_direct(sess, rng.choice(targets)))
            if now >= next_extra:
                next_extra = math.inf
                room = rng.choice(self.extra_rooms)
                if room not in sess.memberships:
                    try:
                        await sess.join(room)
                    except AssertionError:
                        pass  # counted in join_timeouts (or the session closed)
                    extra_until = time.monotonic() + self.expo(cfg["extra_stay"])
            if time.monotonic() >= extra_until:
                for room in [r for r in sess.memberships if r != self.room]:
                    await self._try(sess.leave(room))
                extra_until = math.inf
                next_extra = time.monotonic() + self.expo(cfg["extra_every"])
            wake = min(next_send, next_who, next_direct, next_extra, extra_until, t_end)
            await self._wait(sess, max(0.0, min(wake - time.monotonic(), 1.0)))
        return "clean"

    async def _wait(self, sess, seconds):
        """Sleep, cut short by the session's end or a change of mode."""
        if seconds <= 0:
            return
        ended = asyncio.ensure_future(sess.ended.wait())
        changed = asyncio.ensure_future(self.state.changed.wait())
        try:
            await asyncio.wait([ended, changed], timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            changed.cancel()

    @staticmethod
    async def _try(coro):
        try:
            await coro
        except (ConnectionClosed, OSError):
            pass
