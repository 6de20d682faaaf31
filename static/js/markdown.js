// A small Markdown renderer that builds DOM nodes and never parses HTML: model-written text cannot
// run script, load remote images or open unsafe links. Citations [n] become buttons; tables are tables.
(function () {
  "use strict";
  const SAFE_URL = /^(https?:|mailto:)/i;

  function inline(parent, text, onCite) {
    // Order matters: code spans first, then links/images, bold, italic, citations.
    // "_" inside a word (snake_case) is not emphasis, as in CommonMark.
    const re = /(`[^`]+`)|(!?\[[^\]]*\]\([^)\s]*\))|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|(?<![A-Za-z0-9])_[^_\s][^_]*_(?![A-Za-z0-9]))|(\[\d{1,3}\])/g;
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      const token = m[0];
      if (m[1]) {
        const code = document.createElement("code"); code.textContent = token.slice(1, -1); parent.append(code);
      } else if (m[2]) {
        const parts = /^(!?)\[([^\]]*)\]\(([^)\s]*)\)$/.exec(token);
        const label = parts[2] || parts[3];
        if (parts[1]) { // images are never loaded: show their description as text
          parent.append(document.createTextNode(label ? `[image: ${label}]` : "[image]"));
        } else if (SAFE_URL.test(parts[3])) {
          const a = document.createElement("a");
          a.href = parts[3]; a.textContent = label; a.target = "_blank"; a.rel = "noopener noreferrer nofollow";
          parent.append(a);
        } else {
          parent.append(document.createTextNode(label));
        }
      } else if (m[3]) {
        const b = document.createElement("strong"); inline(b, token.slice(2, -2), onCite); parent.append(b);
      } else if (m[4]) {
        const i = document.createElement("em"); inline(i, token.slice(1, -1), onCite); parent.append(i);
      } else if (m[5] && onCite === false) {  // a passage's own "[n]" is not one of the answer's sources
        parent.append(document.createTextNode(token));
      } else if (m[5]) {
        const n = Number(token.slice(1, -1));
        const chip = document.createElement("button");
        chip.type = "button"; chip.className = "cite"; chip.textContent = String(n); chip.dataset.n = String(n);
        chip.setAttribute("aria-label", `Source ${n}`);
        if (onCite) chip.addEventListener("click", () => onCite(n, chip));
        parent.append(chip);
      }
      last = m.index + token.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  const RULE_CELL = /^\s*:?-{3,}:?\s*$/;

  function cells(line) {
    // Split a table row at its pipes (an escaped \| stays in the cell).
    return line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "").split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
  }

  function tableStarts(lines, i) {
    return /^\s*\|/.test(lines[i]) && i + 1 < lines.length && cells(lines[i + 1]).every((c) => RULE_CELL.test(c));
  }

  function table(lines, i, onCite) {
    const head = cells(lines[i]);
    const align = cells(lines[i + 1]).map((c) => (/^:-+:$/.test(c) ? "center" : /-:$/.test(c) ? "right" : ""));
    const wrap = document.createElement("div"); wrap.className = "table-wrap";
    const t = document.createElement("table");
    const row = (values, tag) => {
      const tr = document.createElement("tr");
      head.forEach((_, k) => {
        const cell = document.createElement(tag);
        if (align[k]) cell.style.textAlign = align[k];
        inline(cell, values[k] || "", onCite); tr.append(cell);
      });
      return tr;
    };
    const thead = document.createElement("thead"); thead.append(row(head, "th"));
    const tbody = document.createElement("tbody");
    i += 2;
    while (i < lines.length && /^\s*\|/.test(lines[i])) tbody.append(row(cells(lines[i++]), "td"));
    t.append(thead, tbody); wrap.append(t);
    return [wrap, i];
  }

  function render(container, source, onCite) {
    const root = document.createDocumentFragment();
    const lines = source.replace(/\r\n/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (/^\s*```/.test(line)) {
        const body = [];
        i++;
        while (i < lines.length && !/^\s*```/.test(lines[i])) body.push(lines[i++]);
        i++;
        const pre = document.createElement("pre"); const code = document.createElement("code");
        code.textContent = body.join("\n"); pre.append(code); root.append(pre);
        continue;
      }
      if (tableStarts(lines, i)) {
        const [node, next] = table(lines, i, onCite);
        root.append(node); i = next; continue;
      }
      const heading = /^(#{1,4})\s+(.*)$/.exec(line);
      if (heading) {
        const h = document.createElement(`h${Math.min(heading[1].length + 2, 6)}`);
        inline(h, heading[2], onCite); root.append(h); i++; continue;
      }
      if (/^\s*([-*•]|\d+[.)])\s+/.test(line)) {
        const ordered = /^\s*\d+[.)]/.test(line);
        const list = document.createElement(ordered ? "ol" : "ul");
        while (i < lines.length && /^\s*([-*•]|\d+[.)])\s+/.test(lines[i])) {
          const li = document.createElement("li");
          inline(li, lines[i].replace(/^\s*([-*•]|\d+[.)])\s+/, ""), onCite);
          list.append(li); i++;
        }
        root.append(list); continue;
      }
      if (/^\s*>/.test(line)) {
        const quote = document.createElement("blockquote"); const body = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
        inline(quote, body.join(" "), onCite); root.append(quote); continue;
      }
      if (!line.trim()) { i++; continue; }
      const para = [];
      while (i < lines.length && lines[i].trim() && !/^\s*(```|#{1,4}\s|[-*•]\s|\d+[.)]\s|>)/.test(lines[i]) && !tableStarts(lines, i)) para.push(lines[i++]);
      if (!para.length) { para.push(lines[i++]); }
      const p = document.createElement("p"); inline(p, para.join("\n"), onCite); root.append(p);
    }
    container.replaceChildren(root);
  }

  window.DocentMarkdown = { render };
})();
