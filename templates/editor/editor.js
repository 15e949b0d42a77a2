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
  // Images: pasted, dropped or chosen; uploaded, then their Markdown goes in at the cursor.
  var body = document.getElementById("body");
  var picker = document.getElementById("image-file");
  var status = document.getElementById("upload-status");
  function upload(file) {
    var data = new FormData();
    data.append("csrf", form.elements.csrf.value);
    data.append("image", file, file.name || "image");
    status.textContent = "올리는 중…";
    fetch(form.getAttribute("data-upload"), {method: "POST", body: data, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (answer.error) { status.textContent = answer.error; return; }
        var at = body.selectionStart;
        body.setRangeText("\n" + answer.markdown + "\n", at, body.selectionEnd, "end");
        status.textContent = "이미지를 넣었습니다.";
        schedule();
      })
      .catch(function () { status.textContent = "이미지를 올리지 못했습니다."; });
  }
  function images(list) {
    var found = [];
    for (var i = 0; list && i < list.length; i++) {
      if (list[i].type.indexOf("image/") === 0) { found.push(list[i]); }
    }
    return found;
  }
  body.addEventListener("paste", function (event) {
    var files = images(event.clipboardData && event.clipboardData.files);
    if (files.length) { event.preventDefault(); files.forEach(upload); }
  });
  body.addEventListener("dragover", function (event) { event.preventDefault(); });
  body.addEventListener("drop", function (event) {
    var files = images(event.dataTransfer && event.dataTransfer.files);
    if (files.length) { event.preventDefault(); files.forEach(upload); }
  });
  if (picker) {
    picker.addEventListener("change", function () {
      images(picker.files).forEach(upload);
      picker.value = "";
    });
  }
  button.click();
})();
