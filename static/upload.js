// The upload page: choose, drop or paste several images and ZIP archives. Each file gets its own
// line with a progress bar and its result; two are sent at a time (see startable). Images go to /upload as htmx
// would send them (the result fragment lands in #messages, the recent list out of band); ZIPs go
// to /api/upload and their JSON report (stored / refused with the reason / skipped) is listed.
// A 429 pauses the queue until its Retry-After, then it goes on.
(function () {
  "use strict";
  const PARALLEL = 2;
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const zone = document.getElementById("drop-zone");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const list = document.getElementById("upload-queue");
  const messages = document.getElementById("messages");
  const text = list.dataset;
  const waiting = [];
  const active = new Set();
  let pausedUntil = 0;
  let timer = null;
  let counter = 0;

  function say(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, name) { return String(values[name]); });
  }

  function element(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function isZip(file) {
    return /\.zip$/i.test(file.name) || file.type === "application/zip" || file.type === "application/x-zip-compressed";
  }

  function enqueue(files) {
    Array.from(files).forEach(function (file) {
      const item = element("li", "upload-item");
      item.dataset.state = "waiting";
      const bar = element("progress");
      bar.max = 100;
      bar.value = 0;
      const state = element("span", "upload-state", text.waiting);
      const outcome = element("div", "upload-outcome");
      item.append(element("span", "upload-name", file.name), state, bar, outcome);
      list.prepend(item);
      waiting.push({ file: file, item: item, bar: bar, state: state, outcome: outcome, loaded: 0 });
    });
    pump();
  }

  function pump() {
    const wait = pausedUntil - Date.now();
    if (wait > 0) {
      if (!timer) timer = setTimeout(function () { timer = null; pump(); }, wait);
      overall();
      return;
    }
    status.hidden = true;
    while (active.size < PARALLEL) {
      const next = waiting.findIndex(startable);
      if (next < 0) break;
      send(waiting.splice(next, 1)[0]);
    }
    overall();
  }

  // The session cookie lists this browser's uploads (and an anonymous upload's delete key): two
  // images in flight at once would each write their own list and one would be lost. So one image
  // at a time, beside it a ZIP (the archive upload does not touch the session).
  function startable(job) {
    if (isZip(job.file)) return true;
    return !Array.from(active).some(function (other) { return !isZip(other.file); });
  }

  function overall() {
    const jobs = Array.from(active).concat(waiting);
    if (!jobs.length) { progress.hidden = true; progress.value = 0; return; }
    let loaded = 0, total = 0;
    jobs.forEach(function (job) { loaded += job.loaded; total += job.file.size || 1; });
    progress.hidden = false;
    progress.value = Math.min(100, Math.round((loaded / total) * 100));
  }

  function settle(job, state, label) {
    active.delete(job);
    job.item.dataset.state = state;
    job.state.textContent = label;
    job.bar.hidden = true;
    job.loaded = job.file.size || 1;
    pump();
  }

  function send(job) {
    active.add(job);
    const zip = isZip(job.file);
    const body = new FormData();
    body.append(zip ? "zipfile" : "file", job.file, job.file.name);
    const request = new XMLHttpRequest();
    request.open("POST", zip ? "/api/upload" : "/upload");
    if (zip) {
      request.setRequestHeader("Accept", "application/json");
    } else {
      request.setRequestHeader("Accept", "text/html");
      request.setRequestHeader("HX-Request", "true");
    }
    job.item.dataset.state = "sending";
    job.state.textContent = text.sending;
    job.bar.value = 0;
    request.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      job.loaded = event.loaded * ((job.file.size || 1) / event.total);
      job.bar.value = Math.round((event.loaded / event.total) * 100);
      overall();
    });
    request.addEventListener("load", function () {
      if (request.status === 429) return limited(job, request);
      if (zip) archiveAnswered(job, request);
      else imageAnswered(job, request);
    });
    ["error", "abort", "timeout"].forEach(function (name) {
      request.addEventListener(name, function () {
        job.outcome.append(element("p", "notice notice-error", text.failed));
        settle(job, "refused", text.refused);
      });
    });
    request.send(body);
  }

  function limited(job, request) {
    const seconds = Math.max(1, parseInt(request.getResponseHeader("Retry-After"), 10) || 5);
    pausedUntil = Math.max(pausedUntil, Date.now() + seconds * 1000);
    active.delete(job);
    job.loaded = 0;
    job.bar.value = 0;
    job.item.dataset.state = "waiting";
    job.state.textContent = text.waiting;
    waiting.unshift(job);
    status.textContent = say(text.limited, { seconds: seconds });
    status.hidden = false;
    pump();
  }

  function copyField(value) {
    counter += 1;
    const id = "upload-link-" + counter;
    const row = element("span", "copy-link");
    const label = element("label", "visually-hidden", text.link);
    label.htmlFor = id;
    const field = element("input");
    field.id = id;
    field.type = "text";
    field.readOnly = true;
    field.value = value;
    const button = element("button", "copy", text.copy);
    button.type = "button";
    button.dataset.copy = "#" + id;
    row.append(label, field, button);
    return row;
  }

  function imageAnswered(job, request) {
    // The same fragment as an htmx upload: the full result in #messages, the recent list out of band.
    htmx.swap(messages, request.responseText, { swapStyle: "innerHTML" });
    const link = messages.querySelector("#direct-link");
    if (request.status < 300 && link) {
      job.outcome.append(copyField(link.value));
      settle(job, "stored", text.stored);
    } else {
      const error = messages.querySelector(".notice-error");
      job.outcome.append(element("p", "upload-reason", error ? error.textContent.trim() : String(request.status)));
      settle(job, "refused", text.refused);
    }
  }

  function archiveAnswered(job, request) {
    let report = null;
    try { report = JSON.parse(request.responseText); } catch (ignored) { report = null; }
    if (request.status === 202 && report && report.job_url) return follow(job, report.job_url);
    showReport(job, report, request.status);
  }

  function follow(job, url) {
    // A long archive is a job: its report fills in while the server unpacks it.
    job.bar.hidden = false;
    job.bar.value = 0;
    const poll = new XMLHttpRequest();
    poll.open("GET", url);
    poll.setRequestHeader("Accept", "application/json");
    poll.addEventListener("load", function () {
      let report = null;
      try { report = JSON.parse(poll.responseText); } catch (ignored) { report = null; }
      if (poll.status === 200 && report && report.state !== "done" && report.state !== "failed") {
        job.state.textContent = say(text.unpacking, { done: report.done || 0, total: report.total || 0 });
        if (report.total) job.bar.value = Math.round((report.done / report.total) * 100);
        setTimeout(function () { follow(job, url); }, 1000);
        return;
      }
      showReport(job, report, poll.status);
    });
    poll.addEventListener("error", function () { setTimeout(function () { follow(job, url); }, 2000); });
    poll.send();
  }

  function showReport(job, report, code) {
    job.outcome.textContent = "";
    if (!report || !Array.isArray(report.results)) {
      const reason = report && report.error ? report.error : String(code);
      job.outcome.append(element("p", "upload-reason", reason));
      settle(job, "refused", text.refused);
      return;
    }
    job.outcome.append(element("p", "upload-summary", say(text.report, {
      album: report.album_name, stored: report.stored, refused: report.refused, skipped: report.skipped,
    })));
    const entries = element("ul", "zip-results");
    report.results.forEach(function (entry) {
      const line = element("li", "zip-entry");
      line.dataset.status = entry.status;
      line.append(element("span", "zip-status", text[entry.status] || entry.status), element("span", "zip-name", entry.entry));
      if (entry.status === "stored" && entry.url) line.append(copyField(entry.url));
      else if (entry.error) line.append(element("span", "upload-reason", entry.error));
      entries.append(line);
    });
    job.outcome.append(entries);
    if (report.error && !report.results.length) job.outcome.append(element("p", "upload-reason", report.error));
    settle(job, report.stored ? "stored" : (report.refused ? "refused" : "skipped"),
      text[report.stored ? "stored" : (report.refused ? "refused" : "skipped")]);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.files.length) enqueue(input.files);
    input.value = "";
  });
  input.addEventListener("change", function () {
    if (input.files.length) enqueue(input.files);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer.files.length) enqueue(event.dataTransfer.files);
  });
  document.addEventListener("paste", function (event) {
    const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    if (files.length) { event.preventDefault(); enqueue(files); }
  });
})();
