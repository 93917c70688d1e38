// The file chooser's Chinese face: show the chosen file's name beside its button (web/templates/_fields.html).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input.file-input").forEach(function (input) {
    var shown = document.querySelector('.file-name[data-for="' + input.id + '"]');
    if (!shown) { return; }
    input.addEventListener("change", function () {
      shown.textContent = input.files && input.files.length ? input.files[0].name : "未选择文件";
    });
  });
});
