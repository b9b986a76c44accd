/* The storage target form of the admin: only the fieldset of the chosen
   kind is shown (a new target: it follows the "Kind" select; an existing
   one, whose kind cannot change, gets only its own fieldset from the server). */
(function () {
  "use strict";
  function sync(select) {
    document.querySelectorAll("fieldset[class*='kind-']").forEach(function (fieldset) {
      fieldset.hidden = !fieldset.classList.contains("kind-" + select.value);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("id_kind");
    if (!select || select.disabled) return;
    sync(select);
    select.addEventListener("change", function () { sync(select); });
  });
})();
