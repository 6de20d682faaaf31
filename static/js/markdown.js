// A small Markdown renderer that builds DOM nodes and never parses HTML: model-written text cannot
// run script, load remote images or open unsafe links. Citations [n] become buttons; tables are tables.
(function () {
  "use strict";
  const SAFE_URL = /^(https?:|mailto:)/i;

  function inline(parent, text, onCite) {
    // Order matters: code spans first, then links/images, bold, italic, citations, struck-out text.
    // "_" inside a word (snake_case) is not emphasis, as in CommonMark.
    const re = /(`[^`]+`)|(!?\[[^\]]*\]\([^)\s]*\))|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|(?<![A-Za-z0-9])_[^_\s][^_]*_(?![A-Za-z0-9]))|(\[\d{1,3}\])|(~~[^~]+~~)/g;
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
      } else if (m[6]) {
        const del = document.createElement("del"); inline(del, token.slice(2, -2), onCite); parent.append(del);
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

  const FENCE = /^\s*(```|~~~)\s*([\w+#.-]*)/;
  const RULE = /^\s{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
  const ITEM = /^(\s*)([-*+•]|\d{1,9}[.)])(\s+)(.*)$/;
  const indentOf = (line) => /^\s*/.exec(line)[0].replace(/\t/g, "    ").length;
  const blank = (line) => !line.trim();

  function startsBlock(lines, i) {
    const line = lines[i];
    return FENCE.test(line) || RULE.test(line) || HEADING.test(line) || ITEM.test(line) || /^\s*>/.test(line) || tableStarts(lines, i);
  }

  function dedent(line, width) {
    let k = 0;
    while (k < line.length && k < width && (line[k] === " " || line[k] === "\t")) k++;
    return line.slice(k);
  }

  // A list, with its items' own blocks: a model's "1. Run:" followed by an indented code block or
  // a nested list stays one item, and blank lines between items ("loose" lists) keep one list,
  // numbered from its first number, instead of restarting at 1 after every item.
  function list(lines, i, onCite) {
    const first = ITEM.exec(lines[i]);
    const base = indentOf(first[1]);
    const ordered = /\d/.test(first[2]);
    const el = document.createElement(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) el.start = parseInt(first[2], 10);
    while (i < lines.length) {
      const m = ITEM.exec(lines[i]);
      if (!m || Math.abs(indentOf(m[1]) - base) > 1 || /\d/.test(m[2]) !== ordered) break;
      const inner = Math.max(base + 2, Math.min(indentOf(m[1]) + m[2].length + m[3].length, base + 4));
      const body = [m[4]];
      let j = i + 1;
      let fenced = FENCE.test(m[4]);
      while (j < lines.length) {
        const line = lines[j];
        if (fenced) {
          body.push(dedent(line, inner)); j++;
          if (FENCE.test(line)) fenced = false;
          continue;
        }
        if (blank(line)) {
          let k = j;
          while (k < lines.length && blank(lines[k])) k++;
          if (k < lines.length && indentOf(lines[k]) >= base + 2) { while (j < k) body.push(lines[j++]); continue; }
          break;
        }
        if (indentOf(line) >= base + 2) {
          body.push(dedent(line, inner)); j++;
          if (FENCE.test(line)) fenced = true;
          continue;
        }
        // A line run on from the item's text (no indent, no new block) belongs to it.
        if (!startsBlock(lines, j) && !blank(body[body.length - 1])) { body.push(line); j++; continue; }
        break;
      }
      const li = document.createElement("li");
      const content = blocks(body, onCite);
      // A tight item (one paragraph) holds its text, not a <p>.
      if (content.firstChild && content.firstChild.nodeName === "P" && !body.some(blank)) {
        li.append(...content.removeChild(content.firstChild).childNodes);
      }
      li.append(content);
      el.append(li);
      i = j;
      let k = i;
      while (k < lines.length && blank(lines[k])) k++;
      const next = k < lines.length ? ITEM.exec(lines[k]) : null;
      if (k > i && next && Math.abs(indentOf(next[1]) - base) <= 1 && /\d/.test(next[2]) === ordered) i = k;
    }
    return [el, i];
  }

  function blocks(lines, onCite) {
    const root = document.createDocumentFragment();
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = FENCE.exec(line);
      if (fence) {
        const body = [];
        const indent = indentOf(line);
        i++;
        while (i < lines.length && !new RegExp(`^\\s*${fence[1]}`).test(lines[i])) body.push(dedent(lines[i++], indent));
        i++;
        const pre = document.createElement("pre"); const code = document.createElement("code");
        if (fence[2]) code.className = `language-${fence[2]}`;
        code.textContent = body.join("\n"); pre.append(code); root.append(pre);
        continue;
      }
      if (tableStarts(lines, i)) {
        const [node, next] = table(lines, i, onCite);
        root.append(node); i = next; continue;
      }
      if (RULE.test(line)) { root.append(document.createElement("hr")); i++; continue; }
      const heading = HEADING.exec(line);
      if (heading) {
        const h = document.createElement(`h${Math.min(heading[1].length + 2, 6)}`);
        inline(h, heading[2], onCite); root.append(h); i++; continue;
      }
      if (ITEM.test(line)) {
        const [node, next] = list(lines, i, onCite);
        root.append(node); i = next; continue;
      }
      if (/^\s*>/.test(line)) {
        const quote = document.createElement("blockquote"); const body = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
        inline(quote, body.join(" "), onCite); root.append(quote); continue;
      }
      if (blank(line)) { i++; continue; }
      const para = [line];
      i++;
      while (i < lines.length && !blank(lines[i]) && !startsBlock(lines, i)) para.push(lines[i++]);
      const p = document.createElement("p"); inline(p, para.join("\n"), onCite); root.append(p);
    }
    return root;
  }

  function render(container, source, onCite) {
    container.replaceChildren(blocks(source.replace(/\r\n/g, "\n").split("\n"), onCite));
  }

  window.DocentMarkdown = { render };
})();
