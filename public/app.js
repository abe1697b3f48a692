// chatbroker's page: speaks proto/PROTOCOL.md over ws(s)://<this host>/ws.
//
// Safe by construction: every piece of text that comes from people (names, emails, messages,
// room names, error reasons) reaches the document as a Text node (h() appends strings as text,
// or textContent); nothing here ever assigns HTML. Links are <a> elements whose href is a
// parsed http(s) URL.

import { ChatSocket } from "./chat-socket.js";
import { emojify, isEmojiOnly } from "./emoji.js";
import { avatar } from "./avatar.js";

const LOBBY = "lobby";
const MAX_ITEMS = 500;                   // kept per conversation
const GROUP_GAP_MS = 5 * 60 * 1000;      // consecutive messages of one sender form a group
const ROSTER_STALE_MS = 5 * 60 * 1000;  // a room brought into view re-asks "who" after this
const BIG_ROOM = 500;                    // gateways stop sending presence of rooms this big
const BIG_ROOM_REFRESH_MS = 60 * 1000;   // so the roster of a big room in view is re-asked
const GUEST_GRACE_MS = 4000;             // how long a "guest-…" join waits for its real name
const PROFILE_KEY = "chatbroker.profile";  // localStorage: the name last used (a prefill)
const SESSION_KEY = "chatbroker.session";  // sessionStorage: this tab's session (reloads)
const utf8 = new TextEncoder();

const ERROR_TITLES = {
  bad_json: "The gateway could not read that",
  bad_message: "The gateway rejected that request",
  unknown_type: "Unknown request",
  bad_room: "That room name is not allowed",
  bad_target: "No such person",
  too_large: "That is too long",
  bad_text: "That text is not allowed",
  already_joined: "You are already in that room",
  not_joined: "You are not in that room",
  too_many_rooms: "Too many rooms",
  unknown_target: "Not delivered",
  rate_limited: "Slow down a little",
  unavailable: "Chat is unavailable for a moment",
};
// Errors after which the last message was not sent: its text goes back to the composer.
const SEND_FAILURES = new Set(["too_large", "rate_limited", "unavailable", "bad_text",
  "not_joined", "unknown_target", "bad_target", "bad_message"]);

// ---- tiny DOM helpers ----------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** h("div", {class, dataset, onclick, ...attrs}, ...children): strings become Text nodes. */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child); // a string is appended as a Text node, never parsed
  }
  return node;
}

const str = (v) => (typeof v === "string" ? v : "");
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : Date.now());
const bytes = (s) => utf8.encode(s).length;
const guestName = (id) => `guest-${id.slice(0, 6)}`;
const isDefaultGuest = (id, name) => !!id && name === guestName(id);
const roomKey = (room) => `room:${room}`;
const dmKey = (id) => `dm:${id}`;
const finePointer = window.matchMedia("(pointer: fine)");
const narrow = window.matchMedia("(max-width: 1099px)");
const phone = window.matchMedia("(max-width: 759px)");

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });

// ---- state -----------------------------------------------------------------------------------

const els = {
  app: $("app"), joinForm: $("join-form"), joinName: $("join-name"), joinEmail: $("join-email"),
  joinAvatar: $("join-avatar"), joinError: $("join-error"), joinCancel: $("join-cancel"),
  joinSubmit: $("join-submit"), chat: $("chat"), conn: $("conn-state"), connLabel: $("conn-label"),
  roomList: $("room-list"), dmList: $("dm-list"), dmEmpty: $("dm-empty"),
  newRoomForm: $("new-room-form"), newRoom: $("new-room"), meAvatar: $("me-avatar"),
  meName: $("me-name"), meSub: $("me-sub"), editProfile: $("edit-profile"),
  openSidebar: $("open-sidebar"), menuBadge: $("menu-badge"), convIcon: $("conv-icon"),
  convName: $("conv-name"), convSub: $("conv-sub"), joinLeave: $("join-leave"),
  toggleMembers: $("toggle-members"), memberCount: $("member-count"), banner: $("banner"),
  bannerText: $("banner-text"), retryNow: $("retry-now"), messages: $("messages"),
  jumpNew: $("jump-new"), composer: $("composer"), text: $("composer-text"), send: $("send"),
  membersPanel: $("members-panel"), members: $("members"), membersTotal: $("members-total"),
  refreshMembers: $("refresh-members"), closeMembers: $("close-members"), scrim: $("scrim"),
  toasts: $("toasts"),
};

const state = {
  me: { id: "", username: "", email: "" },
  gateway: "",
  convs: new Map(),       // key -> conversation (rooms and direct threads)
  active: null,           // key of the conversation in view
  people: new Map(),      // client id -> {username, email}, the latest seen
  wanted: [LOBBY],        // rooms to be in, rejoined after every reconnect
  pendingJoin: null,      // a room asked for from the create box, shown once joined
  rejoining: new Set(),   // rooms rejoined after a reconnect (no "you joined" line)
  renaming: new Set(),    // rooms left and joined again to be announced under our name
  unwanted: new Set(),    // rooms the gateway put us in that we had left (lobby): left again
  lastSend: null,         // {key, text, at, item}: restored if the gateway refuses it
  started: false,
  welcomed: 0,            // welcomes received (more than one: a reconnect)
};

// A connect token, for a gateway started with --token-secret, comes in the page's address
// (#token=… keeps it out of every server's logs; ?token=… works too). It goes to the gateway
// as a Sec-WebSocket-Protocol entry, and leaves the address bar so it is not bookmarked.
function takePageToken() {
  const from = (params) => new URLSearchParams(params).get("token") || "";
  const token = from(location.hash.slice(1)) || from(location.search);
  if (token) history.replaceState(null, "", location.pathname);
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token) ? token : "";
}

const pageToken = takePageToken();
const socket = new ChatSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`,
  { protocols: pageToken ? [`token.${pageToken}`] : [] });

// Read-only handle for people debugging from the console (and for the browser tests).
Object.defineProperty(window, "chatbroker", { value: Object.freeze({ state, socket }) });

function newConv(kind, name, peer = null) {
  return {
    key: kind === "room" ? roomKey(name) : dmKey(name), kind, name, peer,
    items: [], ids: new Set(), unread: 0, joined: false,
    members: new Map(),      // rooms: client id -> {username, email}
    refresh: null,           // rooms: ids heard during a "who" refresh
    refreshTimer: 0, refreshedAt: 0,
    pendingGuests: new Map(),  // id -> timer: joined as "guest-…", the line waits for a name
  };
}

function getRoom(room, create = true) {
  let conv = state.convs.get(roomKey(room));
  if (!conv && create) {
    conv = newConv("room", room);
    state.convs.set(conv.key, conv);
  }
  return conv || null;
}

function getDm(peerId, person) {
  let conv = state.convs.get(dmKey(peerId));
  const known = person || state.people.get(peerId) || { username: guestName(peerId), email: "" };
  if (!conv) {
    conv = newConv("dm", peerId, { id: peerId, username: known.username, email: known.email });
    state.convs.set(conv.key, conv);
  } else if (person) {
    conv.peer.username = person.username;
    conv.peer.email = person.email;
  }
  return conv;
}

const activeConv = () => (state.active ? state.convs.get(state.active) || null : null);

function rememberPerson(id, person) {
  if (!id || id === state.me.id) return;
  state.people.set(id, { username: person.username, email: person.email });
  // Rosters show the name a person used last (a hello can change it at any time).
  for (const conv of state.convs.values()) {
    const m = conv.kind === "room" ? conv.members.get(id) : null;
    if (m && (m.username !== person.username || (m.email || "") !== (person.email || ""))) {
      conv.members.set(id, { username: person.username, email: person.email });
    }
    if (conv.kind === "dm" && conv.peer.id === id) {
      conv.peer.username = person.username;
      conv.peer.email = person.email;
    }
  }
}

/** Is this client in any room we are in? */
function isOnline(id) {
  for (const conv of state.convs.values()) {
    if (conv.kind === "room" && conv.joined && conv.members.has(id)) return true;
  }
  return false;
}

/** A person who reconnected has a new client id: their direct thread follows them when one
 * offline thread has exactly their name and email. */
function adoptPeer(id, person) {
  if (!id || id === state.me.id || state.convs.has(dmKey(id))) return;
  const matches = [...state.convs.values()].filter((c) => c.kind === "dm"
    && c.peer.username === person.username && (c.peer.email || "") === (person.email || "")
    && !isOnline(c.peer.id));
  if (matches.length !== 1) return;
  const conv = matches[0];
  const wasActive = state.active === conv.key;
  state.convs.delete(conv.key);
  conv.name = id;
  conv.peer = { id, username: person.username, email: person.email };
  conv.key = dmKey(id);
  state.convs.set(conv.key, conv);
  if (wasActive) state.active = conv.key;
  addSys(conv, `${person.username} is back online`);
  if (wasActive) renderAll();
}

// ---- persistence (this tab survives a reload; the name is remembered as a prefill) ---------

function persist() {
  try {
    const me = { username: state.me.username, email: state.me.email };
    localStorage.setItem(PROFILE_KEY, JSON.stringify(me));
    const active = state.active && state.active.startsWith("room:") ? state.active : null;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ ...me, rooms: state.wanted, active }));
  } catch {
    /* storage disabled: nothing to remember */
  }
}

function restore(storage, key) {
  try {
    const v = JSON.parse(storage.getItem(key) || "null");
    return v && typeof v === "object" ? v : null;
  } catch {
    return null;
  }
}

// ---- the connection --------------------------------------------------------------------------

socket.addEventListener("open", () => {
  // hello first: the gateway announces our lobby join under this name when it can.
  socket.send(helloFrame());
});
socket.addEventListener("frame", (e) => onFrame(e.detail));
socket.addEventListener("state", () => renderConnection());

function helloFrame() {
  const f = { type: "hello", username: state.me.username };
  if (state.me.email) f.email = state.me.email;
  return f;
}

function onFrame(f) {
  switch (f.type) {
    case "welcome": return onWelcome(f);
    case "message": return onRoomMessage(f);
    case "direct": return onDirect(f);
    case "presence": return onPresence(f);
    case "members": return onMembers(f);
    case "error": return onError(f);
    default: return undefined; // unknown frames are ignored, as the protocol allows
  }
}

function onWelcome(f) {
  const reconnect = state.welcomed > 0;
  state.welcomed += 1;
  state.me.id = str(f.id);
  state.gateway = str(f.gateway);
  const inRooms = (Array.isArray(f.rooms) ? f.rooms : [LOBBY]).filter((r) => typeof r === "string");
  // Every roster is stale now; the joins below bring fresh ones.
  state.renaming.clear();
  state.unwanted.clear();
  for (const conv of state.convs.values()) {
    if (conv.kind !== "room") continue;
    conv.members.clear();
    clearPendingGuests(conv);
    conv.refresh = null;
    conv.joined = false;
  }
  for (const room of inRooms) {
    const conv = getRoom(room);
    conv.joined = true;
    conv.members.set(state.me.id, { username: state.me.username, email: state.me.email });
    if (!state.wanted.includes(room)) { // left it before: leave it again, quietly
      state.unwanted.add(room);
      socket.send({ type: "leave", room });
    } else if (reconnect) {
      state.rejoining.add(room);
    }
  }
  for (const room of state.wanted) {
    if (inRooms.includes(room)) continue;
    getRoom(room);
    if (reconnect || state.welcomed === 1) state.rejoining.add(room);
    socket.send({ type: "join", room });
  }
  if (!state.active || !state.convs.has(state.active)) {
    state.active = roomKey(state.wanted[0] || inRooms[0] || LOBBY);
  }
  if (reconnect) {
    const conv = activeConv();
    if (conv) addSys(conv, "Reconnected. Anything said while you were away is not shown.");
    toast({ kind: "success", title: "Back online", timeout: 3000 });
  }
  renderConnection();
  renderAll();
}

function onRoomMessage(f) {
  const room = str(f.room);
  if (!room) return;
  const conv = getRoom(room);
  const from = str(f.from);
  const item = {
    kind: "msg", id: str(f.id), from, username: str(f.username) || guestName(from),
    email: str(f.email), text: str(f.message), ts: num(f.ts), mine: from === state.me.id,
  };
  if (item.id && conv.ids.has(item.id)) return;
  if (!item.mine) {
    rememberPerson(from, item);
    if (takePendingGuest(conv, from)) addSys(conv, `${item.username} joined`);
    item.mention = mentionsMe(item.text);
  } else if (state.lastSend && state.lastSend.key === conv.key) {
    state.lastSend = null; // it went through
  }
  pushItem(conv, item, !item.mine);
}

function onDirect(f) {
  const from = str(f.from);
  const to = str(f.to);
  const mine = from === state.me.id && to !== state.me.id;
  const peerId = mine ? to : from;
  if (!peerId) return;
  const person = { username: str(f.username) || guestName(from), email: str(f.email) };
  if (!mine) {
    rememberPerson(from, person);
    adoptPeer(from, person);
  }
  const conv = getDm(peerId, mine ? null : person);
  const item = {
    kind: "msg", id: str(f.id), from, username: person.username, email: person.email,
    text: str(f.message), ts: num(f.ts), mine,
  };
  if (item.id && conv.ids.has(item.id)) return;
  pushItem(conv, item, !mine);
  renderSidebar();
}

function onPresence(f) {
  const room = str(f.room);
  const client = str(f.client);
  const event = str(f.event);
  if (!room || !client) return;
  const self = client === state.me.id;
  const conv = getRoom(room, self && event === "join");
  if (!conv) return;
  const person = { username: str(f.username) || guestName(client), email: str(f.email) };

  if (self) {
    onOwnPresence(conv, event, person);
    persist();
    renderSidebar();
    if (state.active === conv.key) renderConvChrome();
    return;
  }

  if (event === "join") {
    conv.members.set(client, person);
    if (conv.refresh) conv.refresh.add(client);
    rememberPerson(client, person);
    adoptPeer(client, person);
    if (isDefaultGuest(client, person.username)) {
      // Most likely a page whose hello was not read yet: it comes back under its name at
      // once (see onOwnPresence). The line waits a little for that, or for a message.
      takePendingGuest(conv, client);
      conv.pendingGuests.set(client, setTimeout(() => {
        if (takePendingGuest(conv, client)) {
          addSys(conv, `${(conv.members.get(client) || person).username} joined`);
        }
      }, GUEST_GRACE_MS));
    } else {
      addSys(conv, `${person.username} joined`);
    }
  } else if (event === "leave") {
    const known = conv.members.get(client);
    conv.members.delete(client);
    if (!takePendingGuest(conv, client)) addSys(conv, `${(known || person).username} left`);
  }
  renderSidebar();
  if (state.active === conv.key) renderConvChrome();
  else if (activeConv()?.kind === "dm") renderHeader();
}

function onOwnPresence(conv, event, person) {
  const room = conv.name;
  if (state.unwanted.has(room)) {
    conv.joined = false;
    conv.members.clear();
    if (event === "leave") state.unwanted.delete(room);
    return;
  }
  if (event === "join") {
    conv.joined = true;
    conv.members.set(state.me.id, { username: state.me.username, email: state.me.email });
    if (isDefaultGuest(state.me.id, person.username) && !isDefaultGuest(state.me.id, state.me.username)
        && state.wanted.includes(room) && !state.renaming.has(room)) {
      // The gateway announced us before it read our hello (the lobby, at connect time):
      // leave and join again, so that the room hears our name rather than "guest-…".
      state.renaming.add(room);
      socket.send({ type: "leave", room });
      socket.send({ type: "join", room });
      return;
    }
    state.renaming.delete(room);
    const quiet = state.rejoining.delete(room);
    if (!state.wanted.includes(room)) state.wanted.push(room);
    if (!quiet) addSys(conv, `You joined #${room}`);
    refreshMembers(conv); // the roster is not sent unasked
    if (state.pendingJoin === room) {
      state.pendingJoin = null;
      select(conv.key);
    }
  } else if (event === "leave") {
    if (state.renaming.has(room)) return; // the join follows at once
    if (!conv.joined) return; // told twice: directly and through the room
    conv.joined = false;
    conv.members.clear();
    clearPendingGuests(conv);
    state.wanted = state.wanted.filter((r) => r !== room);
    addSys(conv, `You left #${room}`);
  }
}

function takePendingGuest(conv, id) {
  const timer = conv.pendingGuests.get(id);
  if (timer === undefined) return false;
  clearTimeout(timer);
  conv.pendingGuests.delete(id);
  return true;
}

function clearPendingGuests(conv) {
  for (const timer of conv.pendingGuests.values()) clearTimeout(timer);
  conv.pendingGuests.clear();
}

function onMembers(f) {
  const conv = getRoom(str(f.room), false);
  if (!conv || !conv.joined) return;
  for (const m of Array.isArray(f.members) ? f.members : []) {
    const id = str(m && m.client);
    if (!id) continue;
    if (conv.refresh) conv.refresh.add(id);
    if (id === state.me.id) {
      conv.members.set(id, { username: state.me.username, email: state.me.email });
      continue;
    }
    const person = { username: str(m.username) || guestName(id), email: str(m.email) };
    conv.members.set(id, person);
    rememberPerson(id, person);
    adoptPeer(id, person);
    if (!isDefaultGuest(id, person.username) && takePendingGuest(conv, id)) {
      addSys(conv, `${person.username} joined`);
    }
  }
  renderSidebar();
  if (state.active === conv.key) renderConvChrome();
}

function onError(f) {
  const code = str(f.code) || "error";
  const reason = str(f.reason) || "The gateway refused that request.";
  const ref = str(f.ref);
  let text = /[.!?]$/.test(reason) ? reason : `${reason}.`;
  text = text.charAt(0).toUpperCase() + text.slice(1);
  if (code === "too_large") text += " Try a shorter message, or split it.";
  if (ref) {
    const peer = state.convs.get(dmKey(ref));
    if (peer) text += ` (${peer.peer.username})`;
    else if (state.convs.has(roomKey(ref))) text += ` (#${ref})`;
  }
  toast({ kind: "error", title: ERROR_TITLES[code] || "The gateway refused that", text, code });

  if (code === "bad_room" || code === "too_many_rooms" || code === "already_joined") {
    const pending = state.pendingJoin;
    state.pendingJoin = null;
    if (code === "already_joined" && pending && state.convs.has(roomKey(pending))) select(roomKey(pending));
    if (pending && code !== "already_joined") {
      els.newRoom.value = pending; // let the name be corrected
    }
    renderSidebar();
  }
  const last = state.lastSend;
  if (last && SEND_FAILURES.has(code) && Date.now() - last.at < 10000) {
    state.lastSend = null;
    if (last.item) markFailed(last.item);
    if (state.active === last.key && els.text.value === "") {
      els.text.value = last.text;
      autosize();
    }
  } else if (code === "unknown_target" && ref) {
    const conv = state.convs.get(dmKey(ref));
    const item = conv && [...conv.items].reverse().find((i) => i.mine && !i.failed);
    if (item) markFailed(item);
  }
}

function markFailed(item) {
  item.failed = true;
  if (item.el && item.el.isConnected) decorateFailed(item.el);
}

function decorateFailed(el) {
  if (el.classList.contains("failed")) return;
  el.classList.add("failed");
  el.append(h("div", { class: "msg-status" }, "Not delivered"));
}

/** Ask every gateway who is in the room; whoever no gateway names within 1.5 s is dropped
 * (a gateway that died took its members with it, without a word). */
function refreshMembers(conv) {
  if (!conv || conv.kind !== "room" || !conv.joined || !socket.online) return;
  if (!socket.send({ type: "who", room: conv.name })) return;
  conv.refreshedAt = Date.now();
  conv.refresh = new Set([state.me.id]);
  clearTimeout(conv.refreshTimer);
  conv.refreshTimer = setTimeout(() => {
    if (!conv.refresh) return;
    for (const id of [...conv.members.keys()]) if (!conv.refresh.has(id)) conv.members.delete(id);
    conv.refresh = null;
    renderSidebar();
    if (state.active === conv.key) renderConvChrome();
  }, 1500);
}

// ---- conversations -----------------------------------------------------------------------

function mentionsMe(text) {
  const name = state.me.username.trim().toLowerCase();
  return name !== "" && text.toLowerCase().includes(`@${name}`);
}

function addSys(conv, text) {
  pushItem(conv, { kind: "sys", text, ts: Date.now() }, false);
}

function pushItem(conv, item, countsAsUnread) {
  conv.items.push(item);
  if (item.id) conv.ids.add(item.id);
  let trimmed = false;
  if (conv.items.length > MAX_ITEMS) {
    for (const old of conv.items.splice(0, conv.items.length - MAX_ITEMS)) conv.ids.delete(old.id);
    trimmed = true;
  }
  const inView = state.active === conv.key;
  if (countsAsUnread && (!inView || document.hidden)) {
    conv.unread += 1;
    renderSidebar();
    updateTitle();
  }
  if (!inView) return;
  if (trimmed) {
    renderMessages();
    return;
  }
  const box = els.messages;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  placeItem(item);
  if (nearBottom || item.mine) scrollToBottom();
  else if (item.kind === "msg") els.jumpNew.hidden = false;
}

function select(key) {
  const conv = state.convs.get(key);
  if (!conv) return;
  state.active = key;
  conv.unread = 0;
  if (conv.kind === "room" && Date.now() - conv.refreshedAt > ROSTER_STALE_MS) refreshMembers(conv);
  closeDrawers();
  renderAll();
  persist();
  if (finePointer.matches && !els.text.disabled) els.text.focus();
}

function forget(conv) {
  state.convs.delete(conv.key);
  if (state.active === conv.key) {
    const next = [...state.convs.values()].find((c) => c.kind === "room" && c.joined)
      || state.convs.values().next().value;
    state.active = next ? next.key : null;
  }
  renderAll();
  persist();
}

function joinRoom(raw) {
  const room = raw.trim().replace(/^#/, "");
  if (room === "") return;
  const conv = state.convs.get(roomKey(room));
  if (conv && conv.joined) {
    select(conv.key);
    return;
  }
  if (!socket.online) {
    toast({ kind: "info", title: "You are offline", text: "Joining works again once the connection is back." });
    return;
  }
  // The name goes to the gateway as typed: it is the judge of room names (bad_room).
  state.unwanted.delete(room);
  state.pendingJoin = room;
  socket.send({ type: "join", room });
}

function leaveRoom(conv) {
  if (!socket.online) {
    toast({ kind: "info", title: "You are offline", text: "Try again once the connection is back." });
    return;
  }
  state.wanted = state.wanted.filter((r) => r !== conv.name);
  socket.send({ type: "leave", room: conv.name });
  persist();
}

function openDm(id) {
  if (!id || id === state.me.id) return;
  const person = state.people.get(id);
  if (person) adoptPeer(id, person);
  const conv = getDm(id, person || null);
  select(conv.key);
}

function sendCurrent() {
  const conv = activeConv();
  const text = els.text.value;
  if (!conv || text.trim() === "") return;
  if (!socket.online) {
    toast({ kind: "info", title: "You are offline", text: "Your message is kept here; send it again once you are back online." });
    return;
  }
  let item = null;
  if (conv.kind === "room") {
    if (!conv.joined) {
      toast({ kind: "info", title: `Join #${conv.name} first`, text: "You can read the history, but only members can write." });
      return;
    }
    socket.send({ type: "message", room: conv.name, message: text });
  } else {
    socket.send({ type: "direct", to: conv.peer.id, message: text });
    // The sender gets no copy of a direct message: it is shown from here.
    item = { kind: "msg", id: "", from: state.me.id, username: state.me.username,
      email: state.me.email, text, ts: Date.now(), mine: true };
    pushItem(conv, item, false);
  }
  state.lastSend = { key: conv.key, text, at: Date.now(), item };
  els.text.value = "";
  autosize();
}

// ---- rendering -----------------------------------------------------------------------------

function renderAll() {
  renderMe();
  renderSidebar();
  renderConvChrome();
  renderMessages();
}

function renderConvChrome() {
  renderHeader();
  renderMembers();
  renderComposer();
}

function renderMe() {
  els.meAvatar.replaceChildren(avatar(state.me.username, state.me.email));
  els.meName.textContent = state.me.username;
  els.meSub.textContent = state.me.email || "no email";
}

function renderConnection() {
  const s = socket.state;
  const retryAt = socket.retryAt;
  const labels = { idle: "Offline", connecting: "Connecting", online: "Online",
    reconnecting: "Reconnecting", expired: "Signed out" };
  els.conn.dataset.state = s;
  els.connLabel.textContent = labels[s] || s;
  els.conn.title = s === "online" ? `Connected to gateway ${state.gateway}` : "Not connected";
  els.conn.dataset.gateway = s === "online" ? state.gateway : "";
  els.app.dataset.connection = s;
  clearInterval(renderConnection.timer);
  if (s === "reconnecting") {
    const tick = () => {
      const left = retryAt ? Math.ceil((retryAt - Date.now()) / 1000) : 0;
      els.bannerText.textContent = left > 0
        ? `Connection lost. Reconnecting in ${left} s…` : "Connection lost. Reconnecting…";
    };
    tick();
    renderConnection.timer = setInterval(tick, 500);
    els.retryNow.hidden = !retryAt;
    els.banner.hidden = false;
  } else if (s === "expired") {
    els.bannerText.textContent = "Your sign-in expired. Open the chat again from your site to continue.";
    els.retryNow.hidden = true;
    els.banner.hidden = false;
  } else {
    els.banner.hidden = true;
  }
  renderComposer();
}

function badge(count) {
  return h("span", { class: "badge", dataset: { unread: String(count) }, hidden: count === 0,
    "aria-label": `${count} unread` }, count > 99 ? "99+" : String(count));
}

function lastActivity(conv) {
  const last = conv.items[conv.items.length - 1];
  return last ? last.ts : 0;
}

function renderSidebar() {
  const focusedKey = document.activeElement?.closest?.("[data-key]")?.dataset.key;
  const rooms = [...state.convs.values()].filter((c) => c.kind === "room");
  const order = (c) => (state.wanted.includes(c.name) ? state.wanted.indexOf(c.name) : 1000);
  rooms.sort((a, b) => (b.joined - a.joined) || (order(a) - order(b)) || a.name.localeCompare(b.name));
  syncList(els.roomList, rooms.map((conv) => {
    const active = conv.key === state.active;
    return [conv.key, [active, conv.joined, conv.unread], () => h("li", { class: `conv-item${active ? " active" : ""}${conv.joined ? "" : " left"}`,
      dataset: { room: conv.name, key: conv.key } },
    h("button", { type: "button", class: "conv-link", "aria-current": active ? "page" : null,
      onclick: () => select(conv.key), title: conv.joined ? `#${conv.name}` : `#${conv.name} (not joined)` },
    h("span", { class: "conv-hash", "aria-hidden": "true" }, "#"),
    h("span", { class: "conv-label" }, conv.name),
    badge(conv.unread)),
    conv.joined
      ? h("button", { type: "button", class: "conv-action", title: `Leave #${conv.name}`,
        "aria-label": `Leave #${conv.name}`, onclick: () => leaveRoom(conv) }, "×")
      : h("button", { type: "button", class: "conv-action", title: `Remove #${conv.name} from the list`,
        "aria-label": `Remove #${conv.name} from the list`, onclick: () => forget(conv) }, "×"))];
  }));

  const dms = [...state.convs.values()].filter((c) => c.kind === "dm");
  dms.sort((a, b) => lastActivity(b) - lastActivity(a));
  syncList(els.dmList, dms.map((conv) => {
    const active = conv.key === state.active;
    const online = isOnline(conv.peer.id);
    return [conv.key, [active, online, conv.unread, conv.peer.username, conv.peer.email], () => h("li", { class: `conv-item dm${active ? " active" : ""}${online ? " online" : " offline"}`,
      dataset: { peer: conv.peer.id, key: conv.key } },
    h("button", { type: "button", class: "conv-link", "aria-current": active ? "page" : null,
      onclick: () => select(conv.key), title: online ? conv.peer.username : `${conv.peer.username} (offline)` },
    h("span", { class: "dm-avatar" }, avatar(conv.peer.username, conv.peer.email),
      h("span", { class: "presence-dot", "aria-hidden": "true" })),
    h("span", { class: "conv-label" }, conv.peer.username),
    badge(conv.unread)),
    h("button", { type: "button", class: "conv-action", title: "Close this conversation",
      "aria-label": `Close the conversation with ${conv.peer.username}`, onclick: () => forget(conv) }, "×"))];
  }));
  els.dmEmpty.hidden = dms.length > 0;
  if (focusedKey) els.chat.querySelector(`[data-key="${CSS.escape(focusedKey)}"] .conv-link`)?.focus();
  updateTitle();
}

function updateTitle() {
  let total = 0;
  for (const conv of state.convs.values()) total += conv.unread;
  const conv = activeConv();
  const where = conv ? (conv.kind === "room" ? `#${conv.name}` : conv.peer.username) : "";
  document.title = `${total ? `(${total}) ` : ""}${where ? `${where} · ` : ""}chatbroker`;
  els.menuBadge.hidden = total === 0;
}

function renderHeader() {
  const conv = activeConv();
  els.chat.classList.toggle("is-dm", conv?.kind === "dm");
  if (!conv) {
    els.convName.textContent = "";
    els.convSub.textContent = "";
    els.convIcon.replaceChildren();
    els.joinLeave.hidden = true;
    return;
  }
  if (conv.kind === "room") {
    els.convIcon.replaceChildren(h("span", { class: "conv-icon-hash" }, "#"));
    els.convName.textContent = conv.name;
    const n = conv.members.size;
    els.convSub.textContent = conv.joined
      ? `${n} ${n === 1 ? "person" : "people"} here`
      : state.pendingJoin === conv.name ? "Joining…" : "You are not in this room";
    els.joinLeave.hidden = false;
    els.joinLeave.textContent = conv.joined ? "Leave" : "Join";
    els.joinLeave.className = `btn btn-small ${conv.joined ? "btn-ghost" : "btn-primary"}`;
    els.memberCount.textContent = conv.joined ? String(n) : "";
  } else {
    els.convIcon.replaceChildren(avatar(conv.peer.username, conv.peer.email));
    els.convName.textContent = conv.peer.username;
    const online = isOnline(conv.peer.id);
    els.convSub.textContent = `Direct message · ${online ? "online" : "offline"}`;
    els.convSub.dataset.online = String(online);
    els.joinLeave.hidden = true;
    els.memberCount.textContent = "";
  }
  updateTitle();
}

function renderMembers() {
  const conv = activeConv();
  if (!conv || conv.kind !== "room") {
    els.members.replaceChildren();
    els.membersTotal.textContent = "";
    return;
  }
  const me = state.me.id;
  const list = [...conv.members.entries()].map(([id, p]) => ({ id, ...p }));
  list.sort((a, b) => (b.id === me) - (a.id === me) || a.username.localeCompare(b.username));
  els.membersTotal.textContent = list.length ? String(list.length) : "";
  const entries = list.map((p) => {
    const self = p.id === me;
    const inner = [avatar(p.username, p.email),
      h("span", { class: "member-name" }, p.username),
      self ? h("span", { class: "member-you" }, "you") : h("span", { class: "member-dm", "aria-hidden": "true" }, "Message")];
    return [`member:${p.id}`, [self, p.username, p.email], () => h("li", { dataset: { client: p.id } }, self
      ? h("div", { class: "member self", title: p.email ? `${p.username} <${p.email}>` : p.username }, inner)
      : h("button", { type: "button", class: "member", title: `Send ${p.username} a direct message`,
        "aria-label": `Send ${p.username} a direct message`, onclick: () => openDm(p.id) }, inner))];
  });
  if (!conv.joined) {
    entries.push(["member:none", [], () => h("li", { class: "members-empty" }, "Join the room to see who is here.")]);
  }
  syncList(els.members, entries);
}

/**
 * Make ul hold one <li> per [key, state, build] entry, in order. An <li> whose key and state
 * are unchanged stays in place (untouched: a click or focus on it is not lost to a re-render);
 * others are built afresh with build().
 */
function syncList(ul, entries) {
  const old = new Map();
  for (const li of ul.children) old.set(li.dataset.key, li);
  const items = entries.map(([key, st, build]) => {
    const sig = JSON.stringify(st);
    const kept = old.get(key);
    if (kept && kept.dataset.sig === sig) {
      old.delete(key);
      return kept;
    }
    const li = build();
    li.dataset.key = key;
    li.dataset.sig = sig;
    return li;
  });
  for (const li of old.values()) li.remove();
  items.forEach((li, i) => {
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
}

function renderComposer() {
  const conv = activeConv();
  const online = socket.online;
  els.composer.dataset.offline = String(!online);
  if (!conv) {
    els.text.disabled = true;
    els.text.placeholder = "";
    return;
  }
  if (conv.kind === "room" && !conv.joined) {
    els.text.disabled = true;
    els.text.placeholder = `Join #${conv.name} to write here`;
  } else {
    els.text.disabled = false;
    els.text.placeholder = !online ? "Offline: reconnecting…"
      : conv.kind === "room" ? `Message #${conv.name}` : `Message ${conv.peer.username}`;
  }
  els.send.disabled = els.text.disabled;
}

// -- the message list --

const view = { prev: null, group: null };

function renderMessages() {
  const conv = activeConv();
  const box = els.messages;
  box.replaceChildren();
  view.prev = null;
  view.group = null;
  els.jumpNew.hidden = true;
  if (!conv) return;
  box.dataset.conv = conv.key;
  if (!conv.items.some((i) => i.kind === "msg")) box.append(emptyState(conv));
  for (const item of conv.items) placeItem(item);
  scrollToBottom();
}

function emptyState(conv) {
  if (conv.kind === "room") {
    return h("div", { class: "empty-state" },
      h("div", { class: "empty-mark", "aria-hidden": "true" }, "#"),
      h("h2", {}, `Welcome to #${conv.name}`),
      h("p", {}, "This is the start of the room. Messages are live: what was said before you arrived is not kept."));
  }
  return h("div", { class: "empty-state" },
    avatar(conv.peer.username, conv.peer.email, { size: "64px" }),
    h("h2", {}, conv.peer.username),
    h("p", {}, `This is your private conversation with ${conv.peer.username}. Only the two of you see it.`));
}

const dayKey = (ts) => new Date(ts).toDateString();

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}

function timeEl(ts) {
  const d = new Date(ts);
  return h("time", { class: "msg-time", datetime: d.toISOString(), title: fullFmt.format(d) }, timeFmt.format(d));
}

function placeItem(item) {
  const box = els.messages;
  box.querySelector(":scope > .empty-state")?.remove();
  const prev = view.prev;
  if (!prev || dayKey(prev.ts) !== dayKey(item.ts)) {
    box.append(h("div", { class: "day", role: "separator" }, h("span", {}, dayLabel(item.ts))));
    view.group = null;
  }
  if (item.kind === "sys") {
    box.append(h("div", { class: "sys" }, h("span", { class: "sys-text" }, item.text), " ", timeEl(item.ts)));
    view.group = null;
  } else {
    const continues = view.group && prev && prev.kind === "msg" && prev.from === item.from
      && prev.username === item.username && prev.email === item.email
      && item.ts - prev.ts < GROUP_GAP_MS;
    if (!continues) {
      view.group = messageGroup(item);
      box.append(view.group.el);
    }
    view.group.body.append(messageEl(item));
  }
  view.prev = item;
}

function messageGroup(item) {
  const body = h("div", { class: "group-body" });
  if (!item.mine) body.append(h("div", { class: "group-head" }, h("span", { class: "author" }, item.username)));
  const el = h("div", { class: `group ${item.mine ? "mine" : "theirs"}`, dataset: { from: item.from } },
    item.mine ? null : avatar(item.username, item.email), body);
  return { el, body };
}

function messageEl(item) {
  const shown = emojify(item.text);
  const el = h("div", { class: "msg", dataset: { id: item.id, from: item.from } },
    h("div", { class: "bubble" },
      h("span", { class: "msg-text" }, renderText(item.text)),
      timeEl(item.ts)));
  if (isEmojiOnly(shown)) el.classList.add("jumbo");
  if (item.mention) el.classList.add("mention");
  if (item.failed) decorateFailed(el);
  item.el = el;
  return el;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

/** Text with links and emoji, as nodes: text stays text (emoji are text too). */
function renderText(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = m[0].replace(/[)\].,;:!?'"]+$/, "");
    let parsed = null;
    try {
      parsed = new URL(url);
    } catch {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) continue;
    frag.append(emojify(text.slice(last, m.index)));
    frag.append(h("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer nofollow" }, url));
    last = m.index + url.length;
  }
  frag.append(emojify(text.slice(last)));
  return frag;
}

function scrollToBottom() {
  els.messages.scrollTop = els.messages.scrollHeight;
  els.jumpNew.hidden = true;
}

// -- toasts --

function toast({ kind = "error", title, text = "", code = "", timeout = kind === "error" ? 9000 : 5000 }) {
  for (const old of els.toasts.children) {
    if (old.dataset.code === code && old.dataset.title === title && old.dataset.text === text) {
      const n = Number(old.dataset.count || "1") + 1;
      old.dataset.count = String(n);
      old.querySelector(".toast-count").textContent = `×${n}`;
      clearTimeout(old.timer);
      old.timer = setTimeout(() => dismiss(old), timeout);
      return old;
    }
  }
  const icons = { error: "!", success: "✓", info: "i" };
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status",
    dataset: { code, title, text } },
  h("span", { class: "toast-icon", "aria-hidden": "true" }, icons[kind] || "i"),
  h("div", { class: "toast-body" },
    h("div", { class: "toast-title" }, title, h("span", { class: "toast-count" })),
    text ? h("div", { class: "toast-text" }, text) : null,
    code ? h("code", { class: "toast-code" }, code) : null),
  h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: () => dismiss(t) }, "×"));
  els.toasts.append(t);
  while (els.toasts.children.length > 4) els.toasts.firstElementChild.remove();
  t.timer = setTimeout(() => dismiss(t), timeout);
  return t;
}

function dismiss(t) {
  clearTimeout(t.timer);
  t.classList.add("leaving");
  setTimeout(() => t.remove(), 180);
}

// ---- drawers (phone and tablet widths) -----------------------------------------------------

function closeDrawers() {
  els.app.classList.remove("sidebar-open", "members-open");
  els.scrim.hidden = true;
}

function openDrawer(which) {
  els.app.classList.toggle("sidebar-open", which === "sidebar");
  els.app.classList.toggle("members-open", which === "members");
  els.scrim.hidden = false;
}

// ---- sign in -------------------------------------------------------------------------------

function previewJoinAvatar() {
  const name = els.joinName.value.trim() || "?";
  els.joinAvatar.replaceChildren(avatar(name, els.joinEmail.value.trim(), { size: "72px" }));
}

function showJoin(editing) {
  els.app.dataset.screen = editing ? "edit" : "join";
  els.joinCancel.hidden = !editing;
  els.joinSubmit.textContent = editing ? "Save" : "Start chatting";
  document.getElementById("join-title").textContent = editing ? "Your name" : "Say hello";
  els.joinError.hidden = true;
  previewJoinAvatar();
  els.joinName.focus();
  els.joinName.select();
}

function validIdentity(name, email) {
  if (name === "") return "Please type a name.";
  if (bytes(name) > 64) return "That name is too long (64 bytes at most).";
  if (/\p{Cc}/u.test(name)) return "Names cannot hold control characters.";
  if (bytes(email) > 254) return "That email is too long.";
  if (/\p{Cc}/u.test(email)) return "Emails cannot hold control characters.";
  if (email && !/^[^\s@]+@[^\s@]+$/.test(email)) return "That does not look like an email address.";
  return null;
}

function startChat() {
  state.started = true;
  els.app.dataset.screen = "chat";
  els.chat.hidden = false;
  renderAll();
  socket.start();
}

els.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = els.joinName.value.trim();
  const email = els.joinEmail.value.trim();
  const problem = validIdentity(name, email);
  if (problem) {
    els.joinError.textContent = problem;
    els.joinError.hidden = false;
    return;
  }
  state.me.username = name;
  state.me.email = email;
  persist();
  if (state.started) {
    els.app.dataset.screen = "chat";
    socket.send(helloFrame());
    for (const conv of state.convs.values()) {
      if (conv.kind === "room" && conv.members.has(state.me.id)) conv.members.set(state.me.id, { username: name, email });
    }
    renderAll();
    toast({ kind: "success", title: "Saved", text: "Your next messages carry the new name." });
    return;
  }
  startChat();
});
els.joinName.addEventListener("input", previewJoinAvatar);
els.joinEmail.addEventListener("input", previewJoinAvatar);
els.joinCancel.addEventListener("click", () => { els.app.dataset.screen = "chat"; });
els.editProfile.addEventListener("click", () => {
  els.joinName.value = state.me.username;
  els.joinEmail.value = state.me.email;
  showJoin(true);
});

// ---- the rest of the wiring ---------------------------------------------------------------

els.newRoomForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const value = els.newRoom.value;
  els.newRoom.value = "";
  joinRoom(value);
});

els.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  sendCurrent();
});

function autosize() {
  els.text.style.height = "auto";
  els.text.style.height = `${Math.min(els.text.scrollHeight, 200)}px`;
}

els.text.addEventListener("input", autosize);
els.text.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
    e.preventDefault();
    sendCurrent();
  }
});

els.joinLeave.addEventListener("click", () => {
  const conv = activeConv();
  if (!conv || conv.kind !== "room") return;
  if (conv.joined) leaveRoom(conv);
  else joinRoom(conv.name);
});

els.toggleMembers.addEventListener("click", () => {
  if (narrow.matches) {
    if (els.app.classList.contains("members-open")) closeDrawers();
    else openDrawer("members");
    return;
  }
  const hidden = els.chat.classList.toggle("members-hidden");
  els.toggleMembers.setAttribute("aria-expanded", String(!hidden));
});
els.closeMembers.addEventListener("click", closeDrawers);
els.openSidebar.addEventListener("click", () => openDrawer("sidebar"));
els.scrim.addEventListener("click", closeDrawers);
els.refreshMembers.addEventListener("click", () => refreshMembers(activeConv()));
els.retryNow.addEventListener("click", () => socket.retryNow());
els.jumpNew.addEventListener("click", scrollToBottom);
els.messages.addEventListener("scroll", () => {
  const box = els.messages;
  if (box.scrollHeight - box.scrollTop - box.clientHeight < 40) els.jumpNew.hidden = true;
});

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    if (els.app.dataset.screen === "edit") els.app.dataset.screen = "chat";
    closeDrawers();
    return;
  }
  if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown") && state.started) {
    const keys = [...els.chat.querySelectorAll(".conv-item")].map((li) => li.dataset.key);
    const i = keys.indexOf(state.active);
    const next = keys[(i + (e.key === "ArrowDown" ? 1 : keys.length - 1)) % keys.length];
    if (next) {
      e.preventDefault();
      select(next);
    }
  }
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  const conv = activeConv();
  if (conv && conv.unread) {
    conv.unread = 0;
    renderSidebar();
  }
  socket.retryNow();
});
window.addEventListener("online", () => socket.retryNow());
phone.addEventListener("change", closeDrawers);

// In a room bigger than a gateway's --presence-limit, presence events stop coming (they would
// cost N² deliveries): its roster, when people look at it, is asked again now and then.
setInterval(() => {
  const conv = activeConv();
  const panelShown = narrow.matches ? els.app.classList.contains("members-open")
    : !els.chat.classList.contains("members-hidden");
  if (conv && conv.kind === "room" && conv.members.size >= BIG_ROOM && panelShown
      && !document.hidden && Date.now() - conv.refreshedAt > BIG_ROOM_REFRESH_MS) {
    refreshMembers(conv);
  }
}, 5000);

// ---- start ---------------------------------------------------------------------------------

const session = restore(sessionStorage, SESSION_KEY);
const profile = restore(localStorage, PROFILE_KEY);
if (session && typeof session.username === "string" && !validIdentity(session.username, str(session.email))) {
  state.me.username = session.username;
  state.me.email = str(session.email);
  if (Array.isArray(session.rooms)) state.wanted = session.rooms.filter((r) => typeof r === "string").slice(0, 32);
  for (const room of state.wanted) getRoom(room);
  state.active = typeof session.active === "string" && state.convs.has(session.active) ? session.active : null;
  startChat();
} else {
  if (profile) {
    els.joinName.value = str(profile.username);
    els.joinEmail.value = str(profile.email);
  }
  showJoin(false);
}
