// Live preview of a template draft: posts the form as it stands to the server, which renders the
// sample message and its checks, and shows the answer. Without JavaScript the page still works:
// saving a draft shows the same preview on the version's page.
(function () {
  "use strict";
  var form = document.querySelector("form[data-preview]");
  var target = document.getElementById("preview");
  if (!form || !target) { return; }
  var timer = null;
  var latest = 0;
  function refresh() {
    var ticket = ++latest;
    var body = new URLSearchParams(new FormData(form));
    body.delete("action");
    fetch(form.getAttribute("data-preview"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        // Only the answer to the latest edit is shown.
        if (ticket === latest) { target.innerHTML = html; }
      })
      .catch(function () {
        if (ticket === latest) { target.textContent = "The preview could not be updated. Save the draft to see it."; }
      });
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
