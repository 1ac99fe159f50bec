/* Totoshka playground: a Telegram-like chat with the bot, through the emulator.
 *
 * Plain JS, no build step. The page plays one simulated Telegram user per browser
 * tab (the user id lives in sessionStorage, so a reload keeps the conversation and a
 * new tab is a new person). Everything it knows about the chat comes from the
 * emulator's control API: it long-polls the chat's event stream (new messages,
 * edits, deletions, chat actions, callback answers) and re-renders a message in
 * place when the bot edits it - exactly what a Telegram client shows.
 *
 * All control-API routes are in `api` below; the rest of the file is rendering.
 */
"use strict";

const CONTROL = "/_emulator";
const STORE_KEY = "totoshka.playground.user";
const POLL_SECONDS = 25;

// ---------------------------------------------------------------- control API
/* The emulator's control API (see totoshka/emulator/control.py), plus three
 * /_playground routes the page server adds (config, language, reply keyboard). */
const api = {
  async call(method, path, body, query) {
    const url = new URL(path, location.href);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const init = { method, headers: {} };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(url, init);
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok || !data || data.ok === false) {
      const reason = (data && data.description) || response.statusText;
      const error = new Error(reason || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data.result;
  },
  config() { return this.call("GET", "/_playground/config"); },
  botInfo(botId) { return this.call("GET", `${CONTROL}/bots/${botId}`); },
  createUser(user) { return this.call("POST", `${CONTROL}/users`, user); },
  getUser(userId) { return this.call("GET", `${CONTROL}/users/${userId}`); },
  setLanguage(userId, language) {
    return this.call("PATCH", `/_playground/users/${userId}`, { language_code: language });
  },
  replyKeyboard(userId) { return this.call("GET", `/_playground/users/${userId}/keyboard`); },
  sendText(userId, text) { return this.call("POST", `${CONTROL}/users/${userId}/text`, { text }); },
  async sendFiles(userId, kind, files, caption) {
    if (files.length === 1) {
      // One file: a multipart upload, the part named after the kind (photo | document |
      // animation | video | video_note | sticker); the emulator looks into clips itself.
      const form = new FormData();
      form.set(kind, files[0], files[0].name);
      if (caption) form.set("caption", caption);
      return this.call("POST", `${CONTROL}/users/${userId}/${kind}`, form);
    }
    // Several: one album (a media group), as Telegram sends a multi-select.
    const items = await Promise.all(files.slice(0, 10).map(async (file, i) => ({
      type: kind, data: await readAsDataUrl(file), file_name: file.name,
      mime_type: file.type || undefined, caption: i === 0 && caption ? caption : undefined,
    })));
    return this.call("POST", `${CONTROL}/users/${userId}/album`, { items });
  },
  press(userId, messageId, data) {
    return this.call("POST", `${CONTROL}/users/${userId}/press`, { message_id: messageId, data });
  },
  events(userId, after, timeout) {
    return this.call("GET", `${CONTROL}/users/${userId}/events`, undefined, { after, timeout });
  },
  fileUrl(fileId) { return `${CONTROL}/files/${encodeURIComponent(fileId)}`; },
};

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// ---------------------------------------------------------------- page texts
/* The page's own few words follow the language picker, like a Telegram app's UI;
 * the bot's words come from the bot (it reads the user's language_code). */
const UI = {
  en: {
    new_user: "New user", new_user_title: "Start over as a new Telegram user",
    attach_photo: "🖼️ Photo (compressed)", attach_file: "📄 File (original quality)",
    attach_clip: "🎞️ GIF, video or sticker", attach_note: "⭕ Round video message",
    placeholder: "Message  (try /start)", drop_photo: "Drop here to send as a photo",
    drop_file: "Drop here to send as a file (original quality)",
    bot: "bot", waiting: "waiting for the server…", blocked: "you blocked the bot",
    empty_title: "Try the bot here.",
    empty_hint: "Send /start, then a photo (📎 or drag & drop), and pick a style.",
    language_set: "Telegram language: English. Send /start",
  },
  ru: {
    new_user: "Новый пользователь", new_user_title: "Начать заново другим пользователем Telegram",
    attach_photo: "🖼️ Фото (сжатое)", attach_file: "📄 Файл (исходное качество)",
    attach_clip: "🎞️ GIF, видео или стикер", attach_note: "⭕ Видеосообщение (кружок)",
    placeholder: "Сообщение  (например, /start)", drop_photo: "Бросьте сюда, чтобы отправить фото",
    drop_file: "Бросьте сюда, чтобы отправить файлом (исходное качество)",
    bot: "бот", waiting: "ждём сервер…", blocked: "вы заблокировали бота",
    empty_title: "Попробуйте бота здесь.",
    empty_hint: "Отправьте /start, потом фото (📎 или перетащите) и выберите стиль.",
    language_set: "Язык Telegram: русский. Отправьте /start",
  },
};
const tr = (key) => (UI[$("lang").value] || UI.en)[key] || UI.en[key] || key;

function applyUiLanguage() {
  document.documentElement.lang = $("lang").value;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = tr(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-title]")) node.title = tr(node.dataset.i18nTitle);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = tr(node.dataset.i18nPlaceholder);
  }
  const empty = $("messages").querySelector(".empty");
  if (empty) { empty.remove(); showEmpty(); }
  if (["bot", "бот"].includes($("bot-status").textContent)) setStatus(tr("bot"));
}

// ---------------------------------------------------------------- helpers
const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};
const humanSize = (bytes) => {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
  return `${bytes.toFixed(i && bytes < 10 ? 1 : 0)} ${units[i]}`;
};
const clock = (unix) => {
  const d = unix ? new Date(unix * 1000) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
};

/* Text + MessageEntity[] -> DOM. Offsets are UTF-16 code units, which is what JS
 * strings index by, so slicing is direct. Entities may nest; we build a tree by
 * walking boundaries. */
function renderEntities(text, entities) {
  const root = el("span", { class: "text" });
  if (!text) return root;
  const list = (entities || []).slice().sort((a, b) => a.offset - b.offset || b.length - a.length);
  const wrap = (entity, inner) => {
    const slice = text.slice(entity.offset, entity.offset + entity.length);
    switch (entity.type) {
      case "bold": return el("b", {}, inner);
      case "italic": return el("i", {}, inner);
      case "underline": return el("u", {}, inner);
      case "strikethrough": return el("s", {}, inner);
      case "code": return el("code", {}, inner);
      case "pre": return el("pre", {}, inner);
      case "blockquote": case "expandable_blockquote": return el("blockquote", {}, inner);
      case "spoiler": {
        const s = el("span", { class: "spoiler", tabindex: "0", title: "spoiler" }, inner);
        s.addEventListener("click", () => s.classList.add("shown"));
        return s;
      }
      case "text_link": return el("a", { href: entity.url, target: "_blank", rel: "noopener" }, inner);
      case "url": return el("a", { href: /^https?:/i.test(slice) ? slice : `http://${slice}`,
        target: "_blank", rel: "noopener" }, inner);
      case "bot_command": return el("a", { href: "#", class: "command",
        onclick: (e) => { e.preventDefault(); sendText(slice.split("@")[0]); } }, inner);
      default: return el("span", {}, inner);
    }
  };
  const build = (start, end, items) => {
    const out = [];
    let pos = start;
    let i = 0;
    while (i < items.length) {
      const entity = items[i];
      const eStart = Math.max(entity.offset, start);
      const eEnd = Math.min(entity.offset + entity.length, end);
      if (eStart > pos) out.push(text.slice(pos, eStart));
      const nested = [];
      let j = i + 1;
      while (j < items.length && items[j].offset < eEnd) { nested.push(items[j]); j += 1; }
      out.push(wrap(entity, build(eStart, eEnd, nested)));
      pos = Math.max(pos, eEnd);
      i = j;
    }
    if (pos < end) out.push(text.slice(pos, end));
    return out;
  };
  root.append(...build(0, text.length, list).map((n) => (n instanceof Node ? n : document.createTextNode(n))));
  return root;
}

// ---------------------------------------------------------------- state
const state = {
  user: null,        // {id, first_name, language_code}
  after: 0,          // last event seq seen
  rows: new Map(),   // message_id -> row element
  poller: 0,         // generation; a new user stops the old loop
  config: null,      // /_playground/config: bot id and name
};

// ---------------------------------------------------------------- rendering
function photoUrl(sizes) {
  // The largest size up to ~1280 px looks sharp in the bubble; Telegram clients do the same.
  const sorted = sizes.slice().sort((a, b) => a.width * a.height - b.width * b.height);
  const fit = sorted.filter((s) => Math.max(s.width, s.height) <= 1280);
  return api.fileUrl((fit.length ? fit[fit.length - 1] : sorted[0]).file_id);
}

/* A clip as Telegram plays it: an animation starts by itself, muted and looped; a
 * video waits for the play button; a video note is a round, muted loop that a tap
 * unmutes. Without PyAV the emulator keeps a GIF as a GIF, which only <img> plays. */
function clipElement(media, kind, caption) {
  const url = api.fileUrl(media.file_id);
  const alt = caption || kind.replace("_", " ");
  if (kind === "animation" && !/^video\//.test(media.mime_type || "video/mp4")) {
    return el("img", { class: "clip animation", src: url, alt, "data-file-id": media.file_id });
  }
  const poster = media.thumbnail ? api.fileUrl(media.thumbnail.file_id) : undefined;
  const side = kind === "video_note" ? media.length : undefined;
  const attrs = {
    class: `clip ${kind.replace("_", "-")}`, src: url, poster, playsinline: true,
    "data-file-id": media.file_id, "aria-label": alt,
    width: side || media.width || undefined, height: side || media.height || undefined,
  };
  if (kind === "video") Object.assign(attrs, { controls: true, preload: "metadata" });
  else Object.assign(attrs, { autoplay: true, loop: true, muted: true });
  const video = el("video", attrs);
  video.muted = kind !== "video"; // the attribute alone does not mute a script-made element
  if (kind === "video_note") {
    video.title = "Tap for sound";
    video.addEventListener("click", () => { video.muted = !video.muted; video.play().catch(() => {}); });
  }
  return video;
}

/* Stickers have no bubble. A still one is a WebP <img>; a video sticker a looped WebM;
 * an animated (.tgs, Lottie) one would need a Lottie player, so its emoji stands in. */
function stickerElement(sticker) {
  const url = api.fileUrl(sticker.file_id);
  const alt = sticker.emoji || "sticker";
  if (sticker.is_video) {
    const video = el("video", { class: "sticker", src: url, autoplay: true, loop: true, muted: true,
      playsinline: true, "aria-label": alt, "data-file-id": sticker.file_id });
    video.muted = true;
    return video;
  }
  if (sticker.is_animated) {
    return el("span", { class: "sticker tgs", role: "img", "aria-label": alt, title: "animated sticker" }, alt);
  }
  return el("img", { class: "sticker", src: url, alt, "data-file-id": sticker.file_id,
    width: sticker.width, height: sticker.height });
}

function renderKeyboard(message) {
  const rows = (message.reply_markup && message.reply_markup.inline_keyboard) || [];
  if (!rows.length) return null;
  const kb = el("div", { class: "keyboard", role: "group", "aria-label": "Bot buttons" });
  for (const row of rows) {
    const line = el("div", { class: "krow" });
    for (const button of row) {
      if (button.url) {
        line.append(el("a", { href: button.url, target: "_blank", rel: "noopener" }, button.text, " ↗"));
      } else if (button.callback_data !== undefined) {
        const b = el("button", { type: "button", "data-callback": button.callback_data }, button.text);
        b.addEventListener("click", () => pressButton(message.message_id, button.callback_data, b));
        line.append(b);
      } else {
        line.append(el("button", { type: "button", disabled: true, title: "Not supported here" }, button.text));
      }
    }
    kb.append(line);
  }
  return kb;
}

function renderBubble(message) {
  const out = !message.from || !message.from.is_bot;
  const caption = message.caption !== undefined ? message.caption : null;
  const bubble = el("div", { class: "bubble" });
  const meta = el("span", { class: "meta" },
    message.edit_date ? "edited " : "", clock(message.edit_date || message.date), out ? " ✓✓" : "");

  if (message.photo && message.photo.length) {
    bubble.classList.add("media");
    const largest = message.photo[message.photo.length - 1];
    const img = el("img", {
      class: "photo", src: photoUrl(message.photo), loading: "lazy",
      alt: caption || (out ? "Your photo" : "Photo from the bot"),
      width: largest.width, height: largest.height, "data-file-id": largest.file_id,
    });
    img.addEventListener("click", () => openLightbox(api.fileUrl(largest.file_id)));
    bubble.append(img);
  } else if (message.animation) {
    // Telegram's GIFs are silent MP4s that play on their own, looped, like a GIF.
    bubble.classList.add("media");
    bubble.append(clipElement(message.animation, "animation", caption));
  } else if (message.video) {
    bubble.classList.add("media");
    bubble.append(clipElement(message.video, "video", caption));
  } else if (message.video_note) {
    bubble.classList.add("media", "round");
    bubble.append(clipElement(message.video_note, "video_note", caption));
  } else if (message.sticker) {
    bubble.classList.add("media", "sticker-bubble");
    bubble.append(stickerElement(message.sticker));
  } else if (message.document) {
    const d = message.document;
    const url = api.fileUrl(d.file_id);
    const isImage = /^image\//.test(d.mime_type || "");
    const icon = el("a", { class: "doc-icon", href: url, download: d.file_name || "file",
      title: "Download", "aria-label": `Download ${d.file_name || "file"}` },
      d.thumbnail ? el("img", { src: api.fileUrl(d.thumbnail.file_id), alt: "" }) : (isImage ? "🖼" : "📄"));
    bubble.append(el("div", { class: "doc" }, icon,
      el("div", {},
        el("div", { class: "doc-name" }, d.file_name || "file"),
        el("div", { class: "doc-size" }, humanSize(d.file_size), " · ",
          el("a", { href: url, download: d.file_name || "file", class: "download" }, "Download"),
          isImage ? [" · ", el("a", { href: url, target: "_blank", rel: "noopener" }, "Open")] : null))));
  } else if (message.voice || message.audio) {
    bubble.append(el("span", { class: "text" }, "[media]"));
  }

  const body = message.text !== undefined ? renderEntities(message.text, message.entities)
    : caption !== null ? renderEntities(caption, message.caption_entities) : null;
  if (body) {
    if (bubble.classList.contains("media")) bubble.classList.add("captioned");
    body.append(meta);
    bubble.append(body);
  } else {
    bubble.append(meta);
  }
  return bubble;
}

function renderMessage(message) {
  const out = !message.from || !message.from.is_bot;
  const row = el("div", { class: `row ${out ? "out" : "in"}`, "data-message-id": message.message_id });
  row.append(renderBubble(message));
  const kb = renderKeyboard(message);
  if (kb) {
    row.classList.add("has-keyboard");
    row.append(kb);
  }
  return row;
}

function scrollDown() {
  const chat = $("chat");
  chat.scrollTop = chat.scrollHeight;
}

function upsertMessage(message) {
  const placeholder = $("messages").querySelector(".empty");
  if (placeholder) placeholder.remove();
  const row = renderMessage(message);
  const old = state.rows.get(message.message_id);
  const nearBottom = $("chat").scrollHeight - $("chat").scrollTop - $("chat").clientHeight < 120;
  if (old) {
    old.replaceWith(row);
  } else {
    // Keep message_id order even if events arrive out of order.
    const later = [...state.rows.entries()].filter(([id]) => id > message.message_id)
      .sort((a, b) => a[0] - b[0]);
    const before = later.length ? topLevel(later[0][1]) : null;
    let node = row;
    if (message.media_group_id) {
      // An album (media group) is one block with a grid of its items, as in Telegram.
      let album = $("messages").querySelector(`.album[data-group="${CSS.escape(message.media_group_id)}"]`);
      if (album) {
        album.append(row);
        node = null;
      } else {
        album = el("div", { class: `album ${row.classList.contains("out") ? "out" : "in"}`,
          "data-group": message.media_group_id, role: "group", "aria-label": "Album" });
        album.append(row);
        node = album;
      }
    }
    if (node) $("messages").insertBefore(node, before);
  }
  state.rows.set(message.message_id, row);
  if (!old || nearBottom) {
    scrollDown();
    for (const img of row.querySelectorAll("img")) img.addEventListener("load", scrollDown, { once: true });
  }
}

function topLevel(row) {
  return row.parentElement && row.parentElement.classList.contains("album") ? row.parentElement : row;
}

function removeMessage(messageId) {
  const row = state.rows.get(messageId);
  if (row) {
    const album = row.parentElement && row.parentElement.classList.contains("album") ? row.parentElement : null;
    row.remove();
    if (album && !album.children.length) album.remove();
  }
  state.rows.delete(messageId);
}

function renderReplyKeyboard(markup) {
  const box = $("reply-keyboard");
  box.replaceChildren();
  const rows = markup && markup.keyboard;
  if (!rows || !rows.length) { box.hidden = true; return; }
  for (const row of rows) {
    box.append(el("div", { class: "krow" }, row.map((b) => {
      const text = typeof b === "string" ? b : b.text;
      return el("button", { type: "button", onclick: () => {
        if (markup.one_time_keyboard) box.hidden = true;
        sendText(text);
      } }, text);
    })));
  }
  box.hidden = false;
}

let toastTimer = 0;
function toast(text, alert) {
  const box = $("toast");
  box.textContent = text;
  box.classList.toggle("alert", Boolean(alert));
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, alert ? 6000 : 3000);
}

let actionTimer = 0;
function setStatus(text, active) {
  const status = $("bot-status");
  status.textContent = text;
  status.classList.toggle("active", Boolean(active));
}
const ACTIONS = {
  typing: "typing…", upload_photo: "sending a photo…", upload_document: "sending a file…",
  choose_sticker: "choosing a sticker…", record_voice: "recording voice…",
  upload_video: "sending a video…", record_video_note: "recording a video message…",
  upload_video_note: "sending a video message…",
};
function showAction(action) {
  setStatus(ACTIONS[action] || `${String(action).replace(/_/g, " ")}…`, true);
  clearTimeout(actionTimer);
  // Telegram shows a chat action for 5 seconds or until the bot's next message.
  actionTimer = setTimeout(() => setStatus(tr("bot")), 5000);
}

function openLightbox(src) {
  const box = $("lightbox");
  box.querySelector("img").src = src;
  box.hidden = false;
}

function showEmpty() {
  $("messages").append(el("div", { class: "empty" },
    el("b", {}, tr("empty_title")), el("br"), tr("empty_hint")));
}

// ---------------------------------------------------------------- events
function applyEvent(event) {
  const view = event.message; // MessageView: {message_id, from_bot, deleted, message}
  switch (event.type) {
    case "message":
    case "edit":
      if (!view) break;
      if (view.deleted) { removeMessage(view.message_id); break; }
      upsertMessage(view.message);
      if (event.type === "message" && view.from_bot) {
        clearTimeout(actionTimer);
        setStatus(tr("bot"));
        refreshReplyKeyboard();
      }
      break;
    case "delete":
      removeMessage(event.message_id);
      break;
    case "chat_action":
      showAction(event.data && event.data.action);
      break;
    case "callback_answer": {
      const answer = event.data || {};
      if (answer.text) toast(answer.text, answer.show_alert);
      break;
    }
    case "blocked":
      setStatus(tr("blocked"));
      break;
    default:
      break;
  }
}

async function refreshReplyKeyboard() {
  try {
    renderReplyKeyboard(await api.replyKeyboard(state.user.id));
  } catch (_) { /* cosmetic */ }
}

async function pollLoop(generation) {
  let failures = 0;
  while (generation === state.poller) {
    try {
      const batch = await api.events(state.user.id, state.after, POLL_SECONDS);
      if (generation !== state.poller) return;
      for (const event of batch.events) {
        state.after = Math.max(state.after, event.seq);
        applyEvent(event);
      }
      if (failures) setStatus(tr("bot"));
      failures = 0;
    } catch (error) {
      if (error.status === 404) {
        // The playground restarted: this tab's user no longer exists. Become a new one.
        sessionStorage.removeItem(STORE_KEY);
        becomeUser(null).catch((e) => toast(e.message, true));
        return;
      }
      failures += 1;
      setStatus(tr("waiting"));
      console.warn(error);
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * failures)));
    }
  }
}

// ---------------------------------------------------------------- actions
async function sendText(text) {
  text = text.trim();
  if (!text || !state.user) return;
  try {
    await api.sendText(state.user.id, text);
  } catch (error) {
    toast(error.message, true);
  }
}

/* What a Telegram app makes of a picked file. From the photo picker (or a drop that
 * is not "as a file") a GIF goes as an animation and a video as a video; from the
 * clip picker a WebP or .tgs goes as a sticker too; the round-video picker sends
 * video notes; "as a file" keeps everything a document. */
function kindOf(file, picked) {
  if (picked === "document" || picked === "video_note") return picked;
  const name = (file.name || "").toLowerCase();
  const type = file.type || "";
  if (type === "image/gif" || name.endsWith(".gif")) return "animation";
  if (/^video\//.test(type) || /\.(mp4|webm|mov)$/.test(name)) return "video";
  if (picked === "clip" && (type === "image/webp" || /\.(webp|tgs)$/.test(name))) return "sticker";
  return "photo";
}

async function sendFiles(picked, files) {
  files = [...files];
  if (!files.length || !state.user) return;
  const caption = $("text").value.trim();
  const kinds = files.map((file) => kindOf(file, picked));
  try {
    if (kinds.every((k) => k === kinds[0]) && ["photo", "document"].includes(kinds[0])) {
      await api.sendFiles(state.user.id, kinds[0], files, caption); // several: one album
    } else {
      // Clips and stickers go one message each, the caption with the first.
      for (const [i, file] of files.entries()) {
        await api.sendFiles(state.user.id, kinds[i], [file], i === 0 ? caption : "");
      }
    }
    if (caption) $("text").value = "";
  } catch (error) {
    toast(error.message, true);
  }
}

async function pressButton(messageId, data, button) {
  button.disabled = true;
  button.classList.add("busy");
  try {
    // The bot's answerCallbackQuery arrives as a callback_answer event (a toast).
    await api.press(state.user.id, messageId, data);
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
  }
}

async function loadConfig() {
  state.config = await api.config();
  $("bot-name").textContent = state.config.bot_name || "Totoshka";
  document.title = `${state.config.bot_name || "Totoshka"} · playground`;
}

/* The commands the bot registered with setMyCommands, for the user's language
 * (Telegram's rule: the language-specific list, else the default one). */
async function loadCommands() {
  try {
    const info = await api.botInfo(state.config.bot_id);
    const lang = state.user ? state.user.language_code : "en";
    const defaults = info.commands.filter((c) => JSON.parse(c.scope).type === "default");
    const chosen = defaults.find((c) => c.language_code === lang) || defaults.find((c) => !c.language_code);
    return chosen ? chosen.commands : [];
  } catch (_) {
    return [];
  }
}

async function renderCommandsMenu() {
  const menu = $("commands-menu");
  const commands = await loadCommands();
  const list = commands.length ? commands : [{ command: "start", description: "" }, { command: "help", description: "" }];
  menu.replaceChildren(...list.map((c) => el("button", { type: "button", role: "menuitem",
    onclick: () => { menu.hidden = true; sendText(`/${c.command}`); } },
    el("span", { class: "cmd" }, `/${c.command}`), el("span", { class: "desc" }, c.description || ""))));
  menu.querySelector("button")?.focus();
}

// ---------------------------------------------------------------- users
const NAMES = ["Ada", "Boris", "Chiara", "Dmitri", "Emma", "Farid", "Greta", "Hiro", "Irina", "Jonas"];

async function becomeUser(existing) {
  state.poller += 1;
  state.after = 0;
  state.rows.clear();
  $("messages").replaceChildren();
  $("reply-keyboard").hidden = true;
  let user;
  if (existing) {
    user = await api.getUser(existing.id); // 404 after a restart of the playground
  } else {
    const first = NAMES[Math.floor(Math.random() * NAMES.length)];
    user = await api.createUser({ first_name: first, language_code: $("lang").value });
  }
  user = { id: user.id, first_name: user.first_name, language_code: user.language_code || "en" };
  sessionStorage.setItem(STORE_KEY, JSON.stringify(user));
  state.user = user;
  $("lang").value = user.language_code === "ru" ? "ru" : "en";
  applyUiLanguage();
  $("user-name").textContent = `${user.first_name} · id ${user.id}`;
  showEmpty();
  setStatus(tr("bot"));
  pollLoop(state.poller);
}

async function start() {
  await loadConfig();
  // A first visit speaks the browser's language; later the picker decides.
  $("lang").value = /^ru\b/i.test(navigator.language || "") ? "ru" : "en";
  applyUiLanguage();
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null"); } catch (_) { saved = null; }
  try {
    await becomeUser(saved);
  } catch (_) {
    // The playground restarted (users live in memory): start as someone new.
    sessionStorage.removeItem(STORE_KEY);
    await becomeUser(null);
  }
}

// ---------------------------------------------------------------- wiring
function wire() {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value;
    $("text").value = "";
    sendText(text);
  });
  const toggleMenu = (menuId, buttonId, show) => {
    const menu = $(menuId);
    menu.hidden = show === undefined ? !menu.hidden : !show;
    $(buttonId).setAttribute("aria-expanded", String(!menu.hidden));
    if (!menu.hidden) menu.querySelector("button")?.focus();
  };
  $("attach").addEventListener("click", () => toggleMenu("attach-menu", "attach"));
  $("commands").addEventListener("click", () => {
    toggleMenu("commands-menu", "commands");
    if (!$("commands-menu").hidden) renderCommandsMenu();
  });
  $("attach-menu").addEventListener("click", (e) => {
    const item = e.target.closest("button[data-kind]");
    if (!item) return;
    toggleMenu("attach-menu", "attach", false);
    const inputs = { photo: "photo-input", clip: "clip-input", video_note: "note-input" };
    $(inputs[item.dataset.kind] || "file-input").click();
  });
  const pickers = [["photo-input", "photo"], ["clip-input", "clip"], ["note-input", "video_note"],
    ["file-input", "document"]];
  for (const [id, kind] of pickers) {
    $(id).addEventListener("change", (e) => { sendFiles(kind, e.target.files); e.target.value = ""; });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      toggleMenu("attach-menu", "attach", false);
      toggleMenu("commands-menu", "commands", false);
      $("lightbox").hidden = true;
    }
  });
  document.addEventListener("click", (e) => {
    if (!e.target.closest("#attach, #attach-menu")) toggleMenu("attach-menu", "attach", false);
    if (!e.target.closest("#commands, #commands-menu")) toggleMenu("commands-menu", "commands", false);
  });
  $("lightbox").addEventListener("click", () => { $("lightbox").hidden = true; });
  $("new-user").addEventListener("click", () => {
    sessionStorage.removeItem(STORE_KEY);
    becomeUser(null).catch((error) => toast(error.message, true));
  });
  $("lang").addEventListener("change", async () => {
    const lang = $("lang").value;
    applyUiLanguage();
    if (!state.user) return;
    try {
      await api.setLanguage(state.user.id, lang);
      state.user.language_code = lang;
      sessionStorage.setItem(STORE_KEY, JSON.stringify(state.user));
      toast(tr("language_set"));
    } catch (error) {
      toast(error.message, true);
    }
  });

  // Drag & drop: two zones, like Telegram's "send as photo / as file".
  const drop = $("drop");
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (e) => { if (!hasFiles(e)) return; depth += 1; drop.hidden = false; });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) drop.hidden = true; });
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    for (const zone of drop.querySelectorAll(".drop-zone")) zone.classList.toggle("over", zone.contains(e.target));
  });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    drop.hidden = true;
    const zone = e.target.closest && e.target.closest(".drop-zone");
    const files = [...e.dataTransfer.files];
    const allMedia = files.every((f) => /^(image|video)\//.test(f.type));
    sendFiles(zone ? zone.dataset.kind : (allMedia ? "photo" : "document"), files);
  });
}

wire();
start().catch((error) => { setStatus("cannot reach the emulator"); toast(error.message, true); });
