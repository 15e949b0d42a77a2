// The editor's only script: a debounced live preview. The body is a plain <textarea>,
// so an input method composes Hangul untouched; while a composition is open
// nothing is sent, and the preview follows once it ends.
(function () {
  "use strict";
  var form = document.getElementById("post-form");
  var button = document.getElementById("preview-button");
  if (!form || !button) { return; }
  var timer = null;
  var composing = false;
  function schedule() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(function () {
      timer = null;
      if (!composing) { button.click(); }
    }, 600);
  }
  form.addEventListener("compositionstart", function () { composing = true; });
  form.addEventListener("compositionend", function () { composing = false; schedule(); });
  form.addEventListener("input", function (event) {
    if (!event.isComposing) { schedule(); }
  });
  button.click();
})();
