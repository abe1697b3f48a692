// Avatars drawn here, from a hash: an identicon (a symmetric 5x5 pattern) for people who gave
// an email, their initials on a coloured disc for the others. No external service, no image
// request: everything is SVG or text made with DOM calls.

const SVG_NS = "http://www.w3.org/2000/svg";

/** FNV-1a over the UTF-16 code units of s, 32 bits, with a seed for more independent bits. */
export function hash32(s, seed = 0x811c9dc5) {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // final avalanche (murmur3 fmix32), so that similar strings look different
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** A hue (0..359) that stays the same for one name. */
export function hueFor(key) {
  return hash32(String(key).trim().toLowerCase(), 0x9e3779b9) % 360;
}

/** Up to two initials: the first character of the first two words (emoji included). */
export function initials(name) {
  const words = String(name).trim().split(/[\s._-]+/u).filter(Boolean);
  const first = (w) => {
    if (typeof Intl.Segmenter === "function") {
      for (const { segment } of new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(w)) {
        return segment;
      }
    }
    return [...w][0] || "";
  };
  if (words.length === 0) return "?";
  const letters = words.length > 1 ? first(words[0]) + first(words[1]) : first(words[0]);
  return letters.toLocaleUpperCase();
}

function identicon(seedText, hue) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "-1.25 -1.25 7.5 7.5");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const bits = hash32(seedText, 0x1234567) ^ (hash32(seedText, 0x89abcdef) << 7);
  const fg = `hsl(${hue} 62% 52%)`;
  let bit = 0;
  let drawn = 0;
  for (let x = 0; x < 3; x++) {
    for (let y = 0; y < 5; y++) {
      const on = (bits >>> bit++) & 1;
      if (!on) continue;
      drawn++;
      for (const cx of x === 2 ? [2] : [x, 4 - x]) {
        const r = document.createElementNS(SVG_NS, "rect");
        r.setAttribute("x", String(cx));
        r.setAttribute("y", String(y));
        r.setAttribute("width", "1.02");
        r.setAttribute("height", "1.02");
        r.setAttribute("fill", fg);
        svg.append(r);
      }
    }
  }
  if (drawn === 0) {
    const r = document.createElementNS(SVG_NS, "rect");
    r.setAttribute("x", "1");
    r.setAttribute("y", "1");
    r.setAttribute("width", "3");
    r.setAttribute("height", "3");
    r.setAttribute("fill", fg);
    svg.append(r);
  }
  return svg;
}

/**
 * An avatar element for a person: <span class="avatar"> holding an identicon (when an email is
 * known) or initials. size: a CSS length. The name only ever becomes text (textContent).
 */
export function avatar(username, email, { size = null, title = true } = {}) {
  const span = document.createElement("span");
  const mail = String(email || "").trim().toLowerCase();
  const hue = hueFor(mail || username || "?");
  span.className = "avatar";
  span.style.setProperty("--avatar-hue", String(hue));
  if (size) span.style.setProperty("--avatar-size", size);
  if (mail) {
    span.classList.add("avatar-identicon");
    span.append(identicon(mail, hue));
  } else {
    span.classList.add("avatar-initials");
    span.textContent = initials(username || "?");
  }
  if (title) span.title = mail ? `${username} <${mail}>` : String(username || "");
  span.setAttribute("aria-hidden", "true");
  return span;
}
