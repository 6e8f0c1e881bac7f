// The top bar's menus: the phone's Menu button, the Build / Models / Operate / Admin groups
// (disclosure buttons: click or Enter opens, Escape or a click elsewhere closes), the link of
// the current page, and the error pages' "Go back" button.
(function () {
  "use strict";

  function setOpen(button, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function closeGroups(except) {
    document.querySelectorAll(".nav-button[aria-expanded='true']").forEach(function (button) {
      if (button !== except) setOpen(button, false);
    });
  }

  function markCurrent(nav) {
    // The longest link path that starts the page's path: /catalog/routes/ over /catalog/.
    var best = null;
    nav.querySelectorAll(".nav-menu a").forEach(function (link) {
      var path = new URL(link.href).pathname;
      if (window.location.pathname.indexOf(path) === 0) {
        if (best === null || path.length > new URL(best.href).pathname.length) best = link;
      }
    });
    if (best !== null) {
      best.setAttribute("aria-current", "page");
      best.closest(".nav-group").classList.add("current");
    }
  }

  function init() {
    var toggle = document.querySelector(".nav-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        setOpen(toggle, toggle.getAttribute("aria-expanded") !== "true");
      });
    }
    var nav = document.querySelector(".main-nav");
    if (nav) {
      nav.querySelectorAll(".nav-button").forEach(function (button) {
        button.addEventListener("click", function () {
          var open = button.getAttribute("aria-expanded") !== "true";
          closeGroups(button);
          setOpen(button, open);
        });
      });
      nav.querySelectorAll(".nav-group").forEach(function (group) {
        group.addEventListener("focusout", function (event) {
          if (!group.contains(event.relatedTarget)) {
            setOpen(group.querySelector(".nav-button"), false);
          }
        });
      });
      markCurrent(nav);
    }
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      // The innermost open thing closes first: a group, then the phone's menu.
      var open = document.querySelector(".nav-button[aria-expanded='true']") ||
        document.querySelector(".nav-toggle[aria-expanded='true']");
      if (open) {
        setOpen(open, false);
        open.focus();
      }
    });
    document.addEventListener("click", function (event) {
      if (!event.target.closest(".nav-group")) closeGroups(null);
    });
    document.querySelectorAll("[data-go-back]").forEach(function (button) {
      if (window.history.length < 2) return;
      button.hidden = false;
      button.addEventListener("click", function () { window.history.back(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
