// The search page: upload or drop an image (or pick a result), call /api/search, draw the grid.
// Plain browser JavaScript, no build step. Shareable URLs: /?id=DOC_ID&method=cnn&k=25[&view=side].
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("client-config").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const fileInput = $("file");
  const dropZone = $("drop-zone");
  const preview = $("preview");
  const dropText = $("drop-text");
  const methodSelect = $("method");
  const kSelect = $("k");
  const statusLine = $("status");
  const errorLine = $("error");
  const queryInfo = $("query-info");
  const queryImage = $("query-image");
  const queryText = $("query-text");
  const results = $("results");
  const sample = $("sample");
  const sampleGrid = $("sample-grid");
  const reshuffle = $("reshuffle");
  const methodNames = Object.fromEntries(config.methods.map((m) => [m.value, m.name]));
  // Methods whose hits "why it matched" explains with the visual words the two images share.
  const wordsMethods = new Set(config.wordsMethods || []);

  // query: {kind: "id", id} | {kind: "file", file} | null
  const state = { query: null, method: config.defaultMethod, k: config.defaultK, view: "single" };
  let previewUrl = null;
  let generation = 0; // a newer search makes the answers of older ones stale

  function nameOf(method) {
    return methodNames[method] || method;
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function crispWhenSmall(img) {
    // CIFAR images are 32x32: upscale them with visible pixels, not a blur.
    img.addEventListener("load", () => {
      img.classList.toggle("crisp", img.naturalWidth > 0 && img.naturalWidth <= 96);
    });
  }

  function showError(message) {
    errorLine.textContent = message;
    errorLine.hidden = !message;
  }

  function setStatus(message) {
    statusLine.textContent = message;
  }

  function validMethod(method) {
    return config.methods.some((m) => m.value === method) ? method : config.defaultMethod;
  }

  function validK(k) {
    const n = Number.parseInt(k, 10);
    return config.kChoices.includes(n) ? n : config.defaultK;
  }

  function pageUrl(id, method, k, view) {
    const params = new URLSearchParams();
    if (id) params.set("id", id);
    params.set("method", method);
    params.set("k", String(k));
    if (view === "side") params.set("view", "side");
    return `${location.pathname}?${params}`;
  }

  function currentUrl() {
    const id = state.query && state.query.kind === "id" ? state.query.id : null;
    return pageUrl(id, state.method, state.k, state.view);
  }

  function readUrl() {
    const params = new URLSearchParams(location.search);
    state.method = validMethod(params.get("method"));
    state.k = validK(params.get("k"));
    state.view = params.get("view") === "side" && config.side ? "side" : "single";
    const id = params.get("id");
    state.query = id ? { kind: "id", id } : null;
    syncControls();
  }

  function syncControls() {
    methodSelect.value = state.method;
    kSelect.value = String(state.k);
    for (const radio of form.elements.view) radio.checked = radio.value === state.view;
    methodSelect.disabled = state.view === "side";
  }

  function messageForStatus(status) {
    if (status === 413) return `The image is larger than the limit of ${config.maxUploadMb} MB.`;
    if (status === 404) return "No image with that id.";
    if (status === 503) return "The index is not available; reload the page for details.";
    return `The server answered ${status}.`;
  }

  async function callSearch(method) {
    let init;
    if (state.query.kind === "id") {
      init = {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ id: state.query.id, method, k: state.k }),
      };
    } else {
      const body = new FormData();
      body.append("image", state.query.file, state.query.file.name || "upload");
      body.append("method", method);
      body.append("k", String(state.k));
      init = { method: "POST", body, headers: { Accept: "application/json" } };
    }
    let response;
    try {
      response = await fetch(config.searchUrl, init);
    } catch (err) {
      throw new Error("The server cannot be reached; is `cbir serve` still running?");
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (err) {
      answer = null; // e.g. a proxy's or waitress's own HTML/text error page
    }
    if (!response.ok) {
      throw new Error(answer && answer.error ? answer.error : messageForStatus(response.status));
    }
    return answer;
  }

  async function search(push) {
    if (!state.query) return;
    const mine = ++generation;
    showError("");
    results.setAttribute("aria-busy", "true");
    setStatus("Searching…");
    if (push) history.pushState(null, "", currentUrl());
    else history.replaceState(null, "", currentUrl());
    const methods = state.view === "side" ? config.side : [state.method];
    try {
      const answers = await Promise.all(methods.map(callSearch));
      if (mine !== generation) return;
      render(answers);
    } catch (err) {
      if (mine !== generation) return;
      results.replaceChildren();
      queryInfo.hidden = true;
      setStatus("");
      showError(err.message);
    } finally {
      if (mine === generation) results.removeAttribute("aria-busy");
    }
  }

  function scoreText(answer, score, hit) {
    // A +gv score is the inlier count plus a rank tie-break: say verified or not instead.
    if (answer.score_kind === "inliers" && hit) return hit.verification ? "verified" : "not verified";
    const name = config.scoreNames[answer.score_kind] || answer.score_kind;
    const digits = answer.score_kind === "cosine" ? 3 : 4;
    return `${name} ${Number(score).toFixed(digits)}`;
  }

  function qualityText(answer) {
    const q = answer.quality;
    if (!q) return null;
    return (
      `P@${q.k} ${q.precision.toFixed(3)} · AP@${q.k} ${q.ap.toFixed(3)} ` +
      `(AP normalised by min(R, k); R = ${q.relevant} indexed images of this class)`
    );
  }

  function renderQuery(answer) {
    const query = answer.query;
    if (state.query.kind === "id") {
      resetDropZone();
      queryImage.src = query.thumbnail_url || query.image_url;
      const parts = [`Image ${query.id}`];
      if (query.label) parts.push(`label ${query.label}`);
      parts.push(query.indexed ? "in the index (left out of its own results)" : "not in the index");
      queryText.textContent = parts.join(" · ");
    } else {
      queryImage.src = previewUrl;
      queryText.textContent = `Uploaded image ${state.query.file.name || ""}`.trim();
    }
    queryInfo.hidden = false;
  }

  function sizeText(item) {
    const parts = [];
    if (item.width && item.height) parts.push(`${item.width}×${item.height}`);
    if (item.bytes !== null && item.bytes !== undefined) {
      const kb = item.bytes / 1024;
      parts.push(kb >= 1024 ? `${(kb / 1024).toFixed(1)} MB` : `${Math.max(1, Math.round(kb))} KB`);
    }
    return parts.join(" · ");
  }

  function fileLines(item) {
    // File name, then folder and image size: what a photo collection is known by.
    const folder = item.folder ? `${item.folder}/` : "";
    return [
      el("span", { class: "file-name", text: item.name || item.id, title: item.id }),
      el("span", { class: "file-meta", text: [folder, sizeText(item)].filter(Boolean).join(" · ") }),
    ];
  }

  function thumbnail(item) {
    const img = el("img", {
      class: "thumb",
      src: item.thumbnail_url || item.image_url,
      alt: item.name || "",
      loading: "lazy",
      width: 96,
      height: 96,
    });
    crispWhenSmall(img);
    return img;
  }

  function sampleItem(item) {
    const link = el(
      "a",
      { href: pageUrl(item.id, state.method, state.k, state.view), "data-id": item.id },
      thumbnail(item),
      item.label ? el("span", { class: "label", text: item.label }) : null,
      ...fileLines(item),
    );
    return el("li", { class: "hit" }, link);
  }

  async function loadSample() {
    const seed = Math.random().toString(36).slice(2, 10);
    const url = `${config.sampleUrl}?n=${config.sampleSize}&seed=${seed}`;
    reshuffle.disabled = true;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || messageForStatus(response.status));
      sampleGrid.replaceChildren(...answer.images.map(sampleItem));
      $("sample-count").textContent =
        `${answer.images.length} of ${answer.documents.toLocaleString()} images, at random. ` +
        "Pick one to search with it.";
    } catch (err) {
      showError(`No sample of the collection: ${err.message}`);
    } finally {
      reshuffle.disabled = false;
    }
  }

  function showSample(visible) {
    sample.hidden = !visible;
    if (visible && !sampleGrid.children.length) loadSample();
  }

  function hitItem(answer, hit, both) {
    const classes = ["hit"];
    if (hit.same_label) classes.push("same");
    if (both && both.has(hit.id)) classes.push("both");
    const img = thumbnail(hit);
    const link = el(
      "a",
      { href: pageUrl(hit.id, state.method, state.k, state.view), "data-id": hit.id },
      img,
      el(
        "span",
        { class: "meta" },
        el("span", { class: "rank", text: `#${hit.rank}` }),
        el("span", { class: "score", text: scoreText(answer, hit.score, hit), title: `score ${hit.score}` }),
      ),
      el(
        "span",
        { class: "label" },
        hit.label || "no label",
        hit.same_label ? el("span", { class: "badge same-badge", text: "✓ same class" }) : null,
      ),
      ...fileLines(hit),
      both && both.has(hit.id) ? el("span", { class: "badge both-badge", text: "in both" }) : null,
      hit.verification ? el("span", { class: "inliers", text: verificationText(hit.verification) }) : null,
    );
    // "Why it matched" needs the query's doc id (/api/why describes two known images): the
    // inliers of a verified hit, the shared visual words of a BoVW or fusion hit.
    const why =
      (hit.verification || wordsMethods.has(answer.method)) && answer.query.id
        ? el("button", {
            type: "button",
            class: "why-button",
            "data-result": hit.id,
            "aria-label": `Why ${hit.name || hit.id} matched`,
            text: "Why it matched",
          })
        : null;
    if (why) why.addEventListener("click", () => openWhy(answer, hit, why));
    return el("li", { class: classes.join(" ") }, link, why);
  }

  function verificationText(v) {
    // The inlier count first (what re-ranked the hit), then the transform in words.
    const parts = [`${v.inliers} inliers`];
    if (v.angle !== null && v.angle !== undefined) parts.push(`${Math.round(v.angle)}°`);
    if (v.scale !== null && v.scale !== undefined) parts.push(`×${Number(v.scale).toFixed(2)}`);
    if (v.mirrored) parts.push("mirrored");
    return parts.join(" · ");
  }

  function whyUrl(queryId, resultId, extra) {
    const params = new URLSearchParams({ query: queryId, result: resultId, ...extra });
    return `${config.whyUrl}?${params}`;
  }

  let whyOpener = null;
  let whyGeneration = 0; // a newer dialog makes the answers for older ones stale

  function openWhy(answer, hit, opener) {
    const mine = ++whyGeneration;
    const v = hit.verification;
    const words = wordsMethods.has(answer.method);
    whyOpener = opener;
    $("why-inliers").hidden = !v;
    $("why-words").hidden = !words;
    if (v) showInliers(answer, hit);
    if (words) showWords(answer, hit, mine);
    $("why").showModal();
  }

  function pairText(answer, hit) {
    return `Query ${answer.query.name || answer.query.id} (left) and result #${hit.rank} ${hit.name || hit.id} (right)`;
  }

  function showInliers(answer, hit) {
    const v = hit.verification;
    $("why-text").textContent =
      `${pairText(answer, hit)}: ${v.inliers} inliers of ${v.matches} matches` +
      (v.angle !== null ? `, rotation ${v.angle}°, scale ${v.scale}` : "") +
      (v.mirrored ? ", the query mirrored" : "") +
      ". Each line joins a point of the query to the point it maps to.";
    const image = $("why-image");
    image.alt = `The query and the result side by side, ${v.inliers} lines joining the matching points`;
    const args = { kind: "inliers" };
    $("why-link").href = whyUrl(answer.query.id, hit.id, args);
    $("why-json").href = whyUrl(answer.query.id, hit.id, { ...args, format: "json" });
    showFigure(image, $("why-status"), answer, hit, args, "Drawing the matches…");
  }

  async function showWords(answer, hit, mine) {
    const image = $("why-words-image");
    const status = $("why-words-status");
    const args = { kind: "words" };
    const jsonUrl = whyUrl(answer.query.id, hit.id, { ...args, format: "json" });
    $("why-words-text").textContent = "";
    image.removeAttribute("src");
    image.alt = "";
    $("why-words-link").href = whyUrl(answer.query.id, hit.id, args);
    $("why-words-json").href = jsonUrl;
    status.textContent = "Finding the visual words they share…";
    let body = null;
    try {
      const response = await fetch(jsonUrl, { headers: { Accept: "application/json" } });
      body = await response.json();
      if (!response.ok) throw new Error(body.error || messageForStatus(response.status));
    } catch (err) {
      if (mine === whyGeneration) status.textContent = `No figure: ${err.message}.`;
      return;
    }
    if (mine !== whyGeneration) return;
    const share = Math.round(100 * body.query_weight_share);
    $("why-words-text").textContent =
      `${pairText(answer, hit)} share ${body.shared_words} of the query's ${body.query_words} ` +
      `visual words (${share} % of its tf-idf weight${body.mirrored ? ", the query mirrored" : ""}); ` +
      `BoVW cosine ${Number(body.score).toFixed(3)}. Each colour is one word: circles mark its ` +
      "keypoints in both images, a line joins them when it occurs once in each" +
      (body.drawn_words < body.shared_words
        ? `; the ${body.drawn_words} words that add most to the cosine are drawn.`
        : ".");
    image.alt = `The query and the result side by side, the keypoints of ${body.shared_words} shared visual words marked`;
    showFigure(image, status, answer, hit, args, "Drawing the shared words…");
  }

  function showFigure(image, status, answer, hit, args, drawing) {
    status.textContent = drawing;
    image.onload = () => {
      status.textContent = "";
    };
    image.onerror = async () => {
      if (!image.getAttribute("src")) return; // the dialog was closed
      // The <img> cannot read the API's error: ask for it as JSON to say why.
      let message = "the server could not draw it";
      try {
        const response = await fetch(whyUrl(answer.query.id, hit.id, { ...args, format: "json" }));
        const body = await response.json();
        if (body.error) message = body.error;
      } catch (err) {
        message = "the server cannot be reached";
      }
      status.textContent = `No figure: ${message}.`;
    };
    image.src = whyUrl(answer.query.id, hit.id, { ...args, embed: "1" });
  }

  function column(answer, both) {
    const headingId = `results-${answer.method}`;
    const quality = qualityText(answer);
    return el(
      "section",
      { class: "column", "aria-labelledby": headingId },
      el(
        "h2",
        { id: headingId },
        nameOf(answer.method),
        el("small", { text: ` ${answer.results.length} results · ${answer.took_ms.toFixed(0)} ms` }),
      ),
      quality ? el("p", { class: "quality", text: quality }) : null,
      !answer.query.id && (wordsMethods.has(answer.method) || answer.results.some((hit) => hit.verification))
        ? el("p", {
            class: "help",
            text: "Why it matched is drawn for a query from the collection: pick a result to search with it.",
          })
        : null,
      answer.results.length
        ? el("ol", { class: "grid" }, ...answer.results.map((hit) => hitItem(answer, hit, both)))
        : el("p", { text: "No results." }),
    );
  }

  function render(answers) {
    renderQuery(answers[0]);
    let both = null;
    let summary = `${answers[0].results.length} results`;
    if (answers.length === 2) {
      const first = new Set(answers[0].results.map((h) => h.id));
      both = new Set(answers[1].results.map((h) => h.id).filter((id) => first.has(id)));
      summary =
        `${nameOf(answers[0].method)} and ${nameOf(answers[1].method)}: ` +
        `${both.size} of ${answers[0].results.length} results in both lists`;
    } else {
      summary += ` for ${nameOf(answers[0].method)} in ${answers[0].took_ms.toFixed(0)} ms`;
    }
    const columns = el(
      "div",
      { class: answers.length === 2 ? "columns side" : "columns" },
      ...answers.map((answer) => column(answer, both)),
    );
    results.replaceChildren(columns);
    showSample(false);
    setStatus(summary);
  }

  function resetDropZone() {
    preview.hidden = true;
    preview.removeAttribute("src");
    dropText.textContent = "Drop an image here, or choose a file";
  }

  function useFile(file) {
    if (!file) return;
    if (file.size > config.maxUploadBytes) {
      showError(`${file.name} is larger than the limit of ${config.maxUploadMb} MB.`);
      return;
    }
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    dropText.textContent = `${file.name || "image"}: drop or choose another`;
    state.query = { kind: "file", file };
    search(true);
  }

  // The header's "About this index" link opens the panel it points to.
  const about = $("about");
  function openAboutOnHash() {
    if (location.hash === "#about") about.open = true;
  }
  window.addEventListener("hashchange", openAboutOnHash);
  openAboutOnHash();

  if (!config.ready) return; // the page explains which command builds the index

  crispWhenSmall(preview);
  crispWhenSmall(queryImage);

  dropZone.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    useFile(fileInput.files[0]);
    fileInput.value = ""; // choosing the same file again searches again
  });
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) useFile(file);
    else showError("Drop an image file (dragging from another page does not carry the file).");
  });

  methodSelect.addEventListener("change", () => {
    state.method = methodSelect.value;
    search(false);
  });
  kSelect.addEventListener("change", () => {
    state.k = validK(kSelect.value);
    search(false);
  });
  for (const radio of form.elements.view) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      state.view = radio.value;
      syncControls();
      search(false);
    });
  }
  form.addEventListener("submit", (event) => event.preventDefault());

  function searchOnClick(event) {
    const link = event.target.closest("a[data-id]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return; // let the browser open the shareable URL in a new tab or window
    }
    event.preventDefault();
    state.query = { kind: "id", id: link.dataset.id };
    window.scrollTo({ top: 0 });
    search(true);
  }
  results.addEventListener("click", searchOnClick);
  const whyDialog = $("why");
  $("why-close").addEventListener("click", () => whyDialog.close());
  whyDialog.addEventListener("click", (event) => {
    if (event.target === whyDialog) whyDialog.close(); // a click on the backdrop
  });
  whyDialog.addEventListener("close", () => {
    whyGeneration += 1;
    $("why-image").removeAttribute("src");
    $("why-words-image").removeAttribute("src");
    if (whyOpener && whyOpener.isConnected) whyOpener.focus();
  });
  sampleGrid.addEventListener("click", searchOnClick);
  reshuffle.addEventListener("click", loadSample);

  window.addEventListener("popstate", () => {
    readUrl();
    if (state.query) search(false);
    else {
      results.replaceChildren();
      queryInfo.hidden = true;
      setStatus("");
      showSample(true);
    }
  });

  readUrl();
  if (state.query) search(false);
  else showSample(true);
})();
