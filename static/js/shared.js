// A shared conversation, read-only: its questions, its answers with their citations, and each cited
// passage opening beside them. The messages come in the page (no socket, no API calls).
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const messages = JSON.parse($("shared-messages").textContent);
  const ENDINGS = { refused: "Not found in the documents.", stopped: "Stopped.",
    interrupted: "The answer was interrupted; what arrived is kept.", failed: "The answer failed." };

  function openSource(m, n, chip) {
    const source = m.sources.find((s) => s.n === n);
    $("source-panel").hidden = false;
    $("source-title").textContent = source ? `[${n}] ${source.title}` : `Source ${n}`;
    $("source-where").textContent = source ? [source.heading_path, source.page ? `page ${source.page}` : ""].filter(Boolean).join(" · ") : "";
    const missing = chip.dataset.missing;
    $("source-check").textContent = missing ? `This passage does not state ${missing}, which the answer gives here: check it in the document.` : "";
    $("source-check").hidden = !missing;
    if (source) window.DocentMarkdown.render($("source-text"), source.text, false);
    else $("source-text").textContent = "This source is not available.";
    $("source-open").hidden = !source;
    if (source) $("source-open").href = `/api/v1/documents/${encodeURIComponent(source.document_id)}/file${source.page ? `#page=${source.page}` : ""}`;
    $("source-close").focus({ preventScroll: true });
    $("source-close").onclick = () => { $("source-panel").hidden = true; chip.focus(); };
  }

  for (const m of messages) {
    const el = document.createElement("article");
    const body = document.createElement("div"); body.className = "body";
    el.append(body);
    if (m.role === "user") {
      el.className = "msg user"; body.textContent = m.text;
    } else {
      el.className = "msg assistant"; el.dataset.status = m.finish_reason || m.status;
      window.DocentMarkdown.render(body, m.text, (n, chip) => openSource(m, n, chip));
      const chips = body.querySelectorAll("button.cite");
      chips.forEach((chip) => chip.classList.toggle("known", m.sources.some((s) => s.n === Number(chip.dataset.n))));
      for (const c of m.checks || []) {
        const chip = chips[c.marker];
        if (!chip || Number(chip.dataset.n) !== c.n) continue;
        chip.classList.add("unverified"); chip.dataset.missing = c.missing.join(", ");
        chip.title = `Source ${c.n} does not state ${chip.dataset.missing}: check this figure`;
      }
      const meta = document.createElement("div"); meta.className = "meta";
      meta.textContent = m.error_code === "moderation_blocked" ? "Not answered: the question goes against the content policy."
        : (ENDINGS[m.status === "refused" ? "refused" : m.finish_reason || m.status] || "");
      el.append(meta);
    }
    $("messages").append(el);
  }
})();
