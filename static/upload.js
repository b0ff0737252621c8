// The upload page: drag and drop, paste and a progress bar. htmx does the sending.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const zone = document.getElementById("drop-zone");
  const progress = document.getElementById("upload-progress");

  function sendFile(file) {
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    htmx.trigger(form, "submit");
  }

  input.addEventListener("change", function () {
    if (input.files.length) htmx.trigger(form, "submit");
  });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer.files.length) sendFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", function (event) {
    const items = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    if (items.length) { event.preventDefault(); sendFile(items[0]); }
  });

  form.addEventListener("htmx:xhr:loadstart", function () { progress.hidden = false; progress.value = 0; });
  form.addEventListener("htmx:xhr:progress", function (event) {
    if (event.detail.lengthComputable) progress.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });
  form.addEventListener("htmx:afterRequest", function () { progress.hidden = true; input.value = ""; });

})();
