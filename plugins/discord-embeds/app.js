// `discord-embeds`: a notify formatter in JavaScript that renders a notification as a
// Discord-style webhook message: one embed with the title, the body as its description,
// a colour by priority and direction, the notification's `data` as fields, its time and a
// footer with the kind and id. Mentions are disabled, so no alert text can ping anyone.
//
// Configure it for the webhook channel (`[notify.formatters] webhook = "discord-embeds"`);
// its `text` is the message's JSON. Other channels get plain text (title and body).
//
// Discord's limits are kept: title 256 characters, description 4096, 25 fields (name 256,
// value 1024), footer 2048, 6000 characters in all; longer text is cut with "…", and
// fields beyond the total are dropped (the description first keeps its room).

const NAME = "discord-embeds";
const VERSION = "0.1.0";

const LIMIT = { title: 256, description: 4096, fields: 25, name: 256, value: 1024, footer: 2048, total: 6000 };

// Discord colours as integers.
const COLOR = { info: 0x3498db, up: 0x2ecc71, down: 0xe67e22, critical: 0xe74c3c };

/** Text cut to `max` characters, with an ellipsis when cut. A string of at most `max`
 *  UTF-16 units has at most `max` characters, so only long ones are split (by code point,
 *  never inside a surrogate pair). */
function cut(text, max) {
  const s = String(text);
  if (s.length <= max) return s;
  const chars = Array.from(s.slice(0, 2 * max));
  return chars.length <= max ? chars.join("") : chars.slice(0, max - 1).join("") + "…";
}

/** A size that is never below Discord's count of characters (UTF-16 units). */
function size(text) {
  return text.length;
}

/** `reference_price` → `Reference price`. */
function label(key) {
  const words = key.replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The notification's `data` object, or an empty one when it is not a JSON object. */
function dataOf(notification) {
  try {
    const data = JSON.parse(notification.dataJson || "{}");
    return data !== null && typeof data === "object" && !Array.isArray(data) ? data : {};
  } catch {
    return {};
  }
}

function colorOf(notification, data) {
  if (notification.priority === "critical") return COLOR.critical;
  const price = Number(data.price);
  const reference = Number(data.reference_price);
  if (Number.isFinite(price) && Number.isFinite(reference) && reference > 0) {
    return price >= reference ? COLOR.up : COLOR.down;
  }
  return COLOR.info;
}

function fieldsOf(data) {
  const fields = [];
  for (const [key, raw] of Object.entries(data)) {
    if (raw === null || raw === undefined || raw === "") continue;
    const value = typeof raw === "object" ? JSON.stringify(raw) : String(raw);
    fields.push({ name: cut(label(key), LIMIT.name), value: cut(value, LIMIT.value), inline: size(value) <= 24 });
    if (fields.length === LIMIT.fields) break;
  }
  return fields;
}

function embedOf(notification) {
  const data = dataOf(notification);
  const embed = {
    title: cut(notification.title, LIMIT.title),
    description: cut(notification.body, LIMIT.description),
    color: colorOf(notification, data),
    footer: { text: cut(`${notification.kind} · ${notification.id}`, LIMIT.footer) },
    fields: fieldsOf(data),
  };
  if (notification.createdAtMs > 0n) {
    embed.timestamp = new Date(Number(notification.createdAtMs)).toISOString();
  }
  // Within the total: fields go first, from the last.
  let used = size(embed.title) + size(embed.description) + size(embed.footer.text);
  used += embed.fields.reduce((n, f) => n + size(f.name) + size(f.value), 0);
  while (used > LIMIT.total && embed.fields.length > 0) {
    const f = embed.fields.pop();
    used -= size(f.name) + size(f.value);
  }
  if (used > LIMIT.total) {
    const room = LIMIT.total - (used - size(embed.description));
    embed.description = cut(embed.description, Math.max(1, room));
  }
  return embed;
}

export const formatNotification = {
  info() {
    return {
      name: NAME,
      version: VERSION,
      kind: "notify-formatter",
      description: "Discord-style embeds JSON for webhooks; plain text elsewhere",
    };
  },

  format(notification, channel) {
    if (channel !== "webhook") {
      const text = `${notification.title}\n${notification.body}`;
      return [{ text, subject: notification.title, html: undefined, parseMode: "plain" }];
    }
    const message = {
      username: "ImpressoX",
      embeds: [embedOf(notification)],
      allowed_mentions: { parse: [] },
    };
    return [{ text: JSON.stringify(message), subject: notification.title, html: undefined, parseMode: "plain" }];
  },
};
