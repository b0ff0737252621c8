// Every page: the "Copy" buttons next to links and snippets (data-copy names the field to copy).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const field = document.querySelector(button.dataset.copy);
    field.select();
    const done = function () { button.dataset.copied = "true"; };
    if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    else { document.execCommand("copy"); done(); }
  });
})();
