// A shared conversation, read-only: its questions, its answers with their citations, and each cited
// passage opening beside them. The messages come in the page (no socket, no API calls).
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const messages = JSON.parse($("shared-messages").textContent);
  const ENDINGS = { refused: "Not found in the documents.", stopped: "Stopped.",
    interrupted: "The answer was interrupted; what arrived is kept.", failed: "The answer failed." };

  function openSource(m, n, chip) {
    window.DocentCitations.open(
      m.sources.find((s) => s.n === n), n, chip,
      (el, source) => window.DocentMarkdown.render(el, source.text, false),
      "This source is not available.",
    );
  }

  // A question's answers (the first and its regenerations) are numbered versions.
  const versions = new Map(), seen = new Map();
  for (const m of messages) if (m.role !== "user" && m.reply_to) versions.set(m.reply_to, (versions.get(m.reply_to) || 0) + 1);

  for (const m of messages) {
    const el = document.createElement("article");
    const body = document.createElement("div"); body.className = "body";
    el.append(body);
    if (m.role === "user") {
      el.className = "msg user"; body.textContent = m.text;
    } else {
      el.className = "msg assistant"; el.dataset.status = m.finish_reason || m.status;
      window.DocentMarkdown.render(body, m.text, (n, chip) => openSource(m, n, chip));
      window.DocentCitations.mark(body, m.sources, m.checks);
      const meta = document.createElement("div"); meta.className = "meta";
      meta.textContent = m.error_code === "moderation_blocked" ? "Not answered: the question goes against the content policy."
        : (ENDINGS[m.status === "refused" ? "refused" : m.finish_reason || m.status] || "");
      const of = versions.get(m.reply_to) || 1;
      if (of > 1) {
        seen.set(m.reply_to, (seen.get(m.reply_to) || 0) + 1);
        meta.textContent = `Version ${seen.get(m.reply_to)} of ${of}. ${meta.textContent}`.trim();
      }
      const list = m.status === "refused" ? null : window.DocentCitations.list(m.text, m.sources, m.checks, (n, button) => openSource(m, n, button));
      if (list) el.append(list);
      el.append(meta);
    }
    $("messages").append(el);
  }
})();
