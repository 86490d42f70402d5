// The simulator's chat page: plain JS, no build step. Every action posts to /sim/api/...,
// which turns it into a real encrypted WeCom callback to the bot; what the user receives comes
// back through a long poll of /sim/api/messages.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const state = { user: "", users: [], rev: -1, gen: 0, menu: [] };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Text with clickable links (the H5 upload link), never as HTML.
  function linkify(parent, text) {
    const re = /(https?:\/\/[^\s<>"'，。）)]+)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      const a = el("a", "", m[1]);
      a.href = m[1];
      a.target = "_blank";
      a.rel = "noopener";
      parent.appendChild(a);
      last = m.index + m[1].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function toast(msg) {
    const t = $("toast");
    t.textContent = msg;
    t.classList.remove("hidden");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.add("hidden"), 4000);
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      toast("请求失败：" + res.status);
      return null;
    }
    const data = await res.json();
    if (!data.ok) toast("机器人没有正常应答：" + data.error);
    return data;
  }

  function roleClass(role) {
    return /审/.test(role) ? "role approver" : "role";
  }

  // ---------------------------------------------------------------- user picker
  function renderUsers() {
    const q = $("filter").value.trim().toLowerCase();
    const list = $("users");
    list.textContent = "";
    state.users
      .filter((u) => !q || [u.user_id, u.name, u.unit, u.role].join(" ").toLowerCase().includes(q))
      .forEach((u) => {
        const li = el("li");
        li.dataset.user = u.user_id;
        const left = el("div");
        left.appendChild(el("div", "name", u.name + "（" + u.user_id + "）"));
        left.appendChild(el("div", "unit", u.unit));
        li.appendChild(left);
        li.appendChild(el("span", roleClass(u.role), u.role || "用户"));
        li.addEventListener("click", () => choose(u.user_id));
        list.appendChild(li);
      });
    if (!list.children.length) list.appendChild(el("li", "unit", "没有匹配的用户"));
  }

  async function loadUsers() {
    try {
      const res = await fetch("/sim/api/users");
      state.users = await res.json();
    } catch (e) {
      state.users = [];
    }
    renderUsers();
  }

  function showPicker() {
    state.user = "";
    state.gen += 1;
    history.replaceState(null, "", "#");
    $("picker").classList.remove("hidden");
    $("switch").classList.add("hidden");
    $("chat").classList.add("hidden");
    $("composer").classList.add("hidden");
    $("title").textContent = "工会服务卡年审";
    $("subtitle").textContent = "模拟企业微信";
    loadUsers();
  }

  function choose(userId, silent) {
    state.user = userId;
    state.rev = -1;
    state.gen += 1;
    history.replaceState(null, "", "#user=" + encodeURIComponent(userId));
    const u = state.users.find((x) => x.user_id === userId);
    $("title").textContent = u ? u.name : userId;
    $("subtitle").textContent = u ? [u.unit, u.role].filter(Boolean).join(" · ") : "企业微信用户";
    $("picker").classList.add("hidden");
    $("switch").classList.remove("hidden");
    $("chat").classList.remove("hidden");
    $("composer").classList.remove("hidden");
    $("chat").textContent = "";
    poll(state.gen);
    if (!silent) post("/sim/api/enter", { user: userId });
    $("text").focus();
  }

  // ---------------------------------------------------------------- conversation
  function renderCard(item) {
    const c = item.card || {};
    const box = el("div", "card");
    box.dataset.taskId = item.task_id;
    const head = el("div", "head");
    const mt = c.main_title || {};
    if (mt.title) head.appendChild(el("div", "ctitle", mt.title));
    if (mt.desc) head.appendChild(el("div", "cdesc", mt.desc));
    box.appendChild(head);
    if (c.quote_area && (c.quote_area.quote_text || c.quote_area.title)) {
      box.appendChild(el("div", "quote", [c.quote_area.title, c.quote_area.quote_text].filter(Boolean).join("\n")));
    }
    (c.horizontal_content_list || []).forEach((kv) => {
      const row = el("div", "kv");
      row.appendChild(el("span", "k", kv.keyname));
      row.appendChild(el("span", "v", kv.value));
      box.appendChild(row);
    });
    if (c.sub_title_text) box.appendChild(el("div", "subtext", c.sub_title_text));
    const buttons = el("div", "buttons");
    if (item.replace_name) {
      const b = el("button", "", item.replace_name);
      b.disabled = true;
      b.dataset.replaced = "1";
      buttons.appendChild(b);
    } else {
      (c.button_list || []).forEach((btn) => {
        const b = el("button", "s" + (btn.style || 1), btn.text);
        b.type = "button";
        b.dataset.key = btn.key;
        b.addEventListener("click", async () => {
          buttons.querySelectorAll("button").forEach((x) => (x.disabled = true));
          const r = await post("/sim/api/click", { user: state.user, task_id: item.task_id, key: btn.key });
          if (!r || !r.ok) buttons.querySelectorAll("button").forEach((x) => (x.disabled = false));
        });
        buttons.appendChild(b);
      });
    }
    box.appendChild(buttons);
    return box;
  }

  function sizeText(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    if (n >= 1024) return (n / 1024).toFixed(1) + " KB";
    return n + " B";
  }

  function renderItem(item) {
    if (item.kind === "event") return el("div", "event", item.text);
    if (item.sender === "system") return el("div", "error", item.text);
    const row = el("div", "row " + (item.sender === "user" ? "user" : "app"));
    row.dataset.kind = item.kind;
    row.dataset.sender = item.sender;
    if (item.kind === "card") {
      row.appendChild(renderCard(item));
    } else if (item.kind === "file") {
      const f = el("div", "file");
      f.appendChild(el("span", "icon", "📄"));
      const info = el("div");
      const a = el("a", "", item.file_name);
      a.href = item.url || "#";
      a.download = item.file_name;
      info.appendChild(a);
      info.appendChild(el("div", "meta", sizeText(item.size || 0)));
      f.appendChild(info);
      row.appendChild(f);
    } else {
      const b = el("div", "bubble");
      linkify(b, item.text || "");
      if (item.truncated) b.appendChild(el("span", "via", "（超过 2048 字节，已被截断）"));
      row.appendChild(b);
    }
    return row;
  }

  function render(items) {
    const chat = $("chat");
    const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
    chat.textContent = "";
    items.forEach((item) => chat.appendChild(renderItem(item)));
    if (atBottom || state.rev <= 0) chat.scrollTop = chat.scrollHeight;
  }

  async function poll(gen) {
    let wait = 0;
    while (gen === state.gen) {
      try {
        const url = "/sim/api/messages?user=" + encodeURIComponent(state.user) + "&rev=" + state.rev + "&wait=" + wait;
        const res = await fetch(url);
        const data = await res.json();
        if (gen !== state.gen) return;
        if (data.rev !== state.rev) {
          render(data.items);
          state.rev = data.rev;
        }
        wait = 20;
      } catch (e) {
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  // ---------------------------------------------------------------- composer
  function renderMenu() {
    const menu = $("menu");
    menu.textContent = "";
    state.menu.forEach((m) => {
      const b = el("button", "", m.text);
      b.type = "button";
      b.dataset.key = m.key;
      b.addEventListener("click", () => post("/sim/api/menu", { user: state.user, key: m.key }));
      menu.appendChild(b);
    });
  }

  $("form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text || !state.user) return;
    $("text").value = "";
    await post("/sim/api/send", { user: state.user, text: text });
  });

  $("file").addEventListener("change", async () => {
    const file = $("file").files[0];
    if (!file || !state.user) return;
    const form = new FormData();
    form.append("user", state.user);
    form.append("file", file, file.name);
    $("file").value = "";
    const res = await fetch("/sim/api/upload", { method: "POST", body: form });
    const data = res.ok ? await res.json() : { ok: false, error: res.status };
    if (!data.ok) toast("文件没有发出去：" + data.error);
  });

  $("switch").addEventListener("click", showPicker);
  $("filter").addEventListener("input", renderUsers);
  $("manual-go").addEventListener("click", () => {
    const id = $("manual-id").value.trim();
    if (id) choose(id);
  });

  async function boot() {
    try {
      const cfg = await (await fetch("/sim/api/config")).json();
      state.menu = cfg.menu || [];
    } catch (e) {
      state.menu = [];
    }
    renderMenu();
    await loadUsers();
    const m = /#user=([^&]+)/.exec(location.hash);
    if (m) choose(decodeURIComponent(m[1]), true);
    else showPicker();
  }

  boot();
})();
