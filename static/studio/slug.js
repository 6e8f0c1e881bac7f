// Slugs derived from names as the user types (until the slug is edited by hand).
//
// A slug input names its name input: <input name="slug" data-slug-from="id_name">. While the
// slug is empty or still the one made from the name, typing a name fills it; once the user
// types a slug of their own it is left alone (clearing it hands it back to the name). The
// server makes the same slug from the name when the field comes empty (studio/slugs.py).
(function () {
  "use strict";

  // Keep in step with studio.slugs.slug_from.
  function slugFrom(name, maxLength) {
    var slug = name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "");
    if (maxLength > 0) {
      slug = slug.slice(0, maxLength).replace(/-+$/, "");
    }
    return slug;
  }

  function follow(slugInput) {
    var nameInput = document.getElementById(slugInput.dataset.slugFrom);
    if (!nameInput || slugInput.disabled || slugInput.readOnly) {
      return;
    }
    var maxLength = parseInt(slugInput.getAttribute("maxlength") || "0", 10);
    var derived = function () {
      return slugFrom(nameInput.value, maxLength);
    };
    // A slug already there that the name would not give was chosen by someone: keep it.
    var byHand = slugInput.value !== "" && slugInput.value !== derived();

    nameInput.addEventListener("input", function () {
      if (!byHand) {
        slugInput.value = derived();
      }
    });
    slugInput.addEventListener("input", function () {
      byHand = slugInput.value !== "";
    });
  }

  function start() {
    document.querySelectorAll("input[data-slug-from]").forEach(follow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
