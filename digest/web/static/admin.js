// Progressive enhancement for the segment form: the live count updates as the rule
// is typed (the "Count" button does the same without JavaScript).
(function () {
  "use strict";
  var form = document.querySelector("form[data-rule-count]");
  if (!form || !window.fetch) return;
  var out = document.getElementById("live-count");
  var rule = form.querySelector("[name=rule]");
  var list = form.querySelector("[name=list]");
  var token = form.querySelector("[name=csrf]").value;
  var timer = null;
  function update() {
    var parsed;
    try { parsed = JSON.parse(rule.value); } catch (e) { out.textContent = "Not JSON yet."; return; }
    fetch(form.getAttribute("data-rule-count"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ list: list.value, rule: parsed })
    }).then(function (r) { return r.json().then(function (body) { return [r.ok, body]; }); })
      .then(function (res) {
        out.textContent = res[0]
          ? res[1].recipients + " recipients match (" + res[1].members + " members in any status)."
          : (res[1].error || "That rule does not work.");
      })
      .catch(function () { out.textContent = ""; });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 400); }
  rule.addEventListener("input", later);
  list.addEventListener("change", later);
  if (rule.value.trim()) later();  // typed before this script ran, or sent back with an error
})();
