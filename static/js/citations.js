// Citation chips and the source panel, as the chat page and a shared conversation both show them
// (the panel's markup is templates/chat/_source_panel.html).
window.DocentCitations = (() => {
  "use strict";
  const $ = (id) => document.getElementById(id);

  // Where a source is: its document, heading path and page ("handbook · Handbook > Leave").
  const where = (s) => [s.title, s.heading_path, s.page ? `page ${s.page}` : ""].filter(Boolean).join(" · ");

  // Chips whose source came with the answer are "known", and name it on hover and to screen readers
  // (where a claim comes from, without opening it); those the server's figure check lists are
  // flagged. The server counts an answer's markers in order, as they are drawn here.
  function mark(body, sources, checks) {
    const chips = body.querySelectorAll("button.cite");
    chips.forEach((chip) => {
      const source = sources.find((s) => s.n === Number(chip.dataset.n));
      chip.classList.toggle("known", !!source);
      if (!source) return;
      chip.title = where(source);
      chip.setAttribute("aria-label", `Source ${source.n}: ${chip.title}`);
    });
    for (const c of checks || []) {
      const chip = chips[c.marker];
      if (!chip || Number(chip.dataset.n) !== c.n) continue;
      chip.classList.add("unverified");
      chip.dataset.missing = c.missing.join(", ");
      chip.title = `Source ${c.n} does not state ${chip.dataset.missing}: check it`;
      chip.setAttribute("aria-label", `Source ${c.n}, which does not state ${chip.dataset.missing}`);
    }
  }

  // Source `n` in the panel: where it is, the figure to check, its passage (drawn by `draw`), and a
  // link to its document, opening a PDF at the cited page. Without the source, `unavailable` says why.
  function open(source, n, chip, draw, unavailable) {
    const panel = $("source-panel");
    panel.hidden = false;
    $("source-title").textContent = source ? `[${n}] ${source.title}` : `Source ${n}`;
    $("source-where").textContent = source ? [source.heading_path, source.page ? `page ${source.page}` : ""].filter(Boolean).join(" · ") : "";
    const missing = source && chip && chip.dataset.missing;
    $("source-check").textContent = missing ? `This passage does not state ${missing}, which the answer gives here: check it in the document.` : "";
    $("source-check").hidden = !missing;
    if (source) draw($("source-text"), source);
    else $("source-text").textContent = unavailable;
    $("source-open").hidden = !source;
    // A passage of a web page (a web source's) also links the page itself, where it was read.
    const web = source && /^https?:\/\//.test(source.url || "") ? source.url : "";
    $("source-web").hidden = !web;
    if (web) $("source-web").href = web;
    $("source-context").hidden = !(source && source.chunk_id);
    if (source && source.chunk_id) {
      $("source-context").href = `/library/documents/${encodeURIComponent(source.document_id)}/?chunk=${encodeURIComponent(source.chunk_id)}`;
    }
    if (source) {
      $("source-open").href = `/api/v1/documents/${encodeURIComponent(source.document_id)}/file${source.page ? `#page=${source.page}` : ""}`;
      $("source-open").textContent = source.page ? `Open the document at page ${source.page}` : "Open the whole document";
    }
    $("source-close").focus({ preventScroll: true });  // the panel stays scrolled to what `draw` marked
    $("source-close").onclick = () => { panel.hidden = true; if (chip) chip.focus(); };
  }

  // The sources an answer cites, in a row under it, in order: each names its document (and page)
  // and opens its passage as the number in the text does, flagged as its number is. Null when the
  // text cites none.
  function list(text, sources, checks, onOpen) {
    const cited = sources.filter((s) => text.includes(`[${s.n}]`)).sort((x, y) => x.n - y.n);
    if (!cited.length) return null;
    const ol = document.createElement("ol");
    ol.className = "source-list";
    ol.setAttribute("aria-label", "Sources");
    for (const s of cited) {
      const button = document.createElement("button");
      button.type = "button"; button.className = "source-chip";
      // Its name is its words ("Source 1: handbook"), the number drawn as a badge.
      const n = document.createElement("span"); n.className = "n"; n.textContent = s.n; n.setAttribute("aria-hidden", "true");
      const said = document.createElement("span"); said.className = "visually-hidden"; said.textContent = `Source ${s.n}: `;
      button.append(n, said, s.title + (s.page ? ` · p. ${s.page}` : ""));
      button.title = where(s);
      // What the server's checks of its numbers found missing, each once.
      const missing = [...new Set((checks || []).filter((c) => c.n === s.n).flatMap((c) => c.missing))].join(", ");
      if (missing) {
        button.classList.add("unverified"); button.dataset.missing = missing;
        const check = document.createElement("span"); check.className = "visually-hidden"; check.textContent = `(does not state ${missing})`;
        button.append(check);
      }
      button.addEventListener("click", () => onOpen(s.n, button));
      const li = document.createElement("li"); li.append(button); ol.append(li);
    }
    return ol;
  }

  return { list, mark, open, where };
})();
