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

// The segment builder: as its conditions change, the server writes the rule (the same
// data the CLI takes) into the JSON field and counts it. Without JavaScript, the
// "Write the rule and count" button does the same.
(function () {
  "use strict";
  var box = document.querySelector("fieldset[data-rule-build]");
  if (!box || !window.fetch) return;
  var form = box.form || box.closest("form");
  var out = document.getElementById("live-count");
  var rule = form.querySelector("[name=rule]");
  var list = form.querySelector("[name=list]");
  var token = form.querySelector("[name=csrf]").value;
  var timer = null;
  function value(name) {
    var el = form.querySelector("[name='" + name + "']");
    return el ? el.value : "";
  }
  function rows() {
    var found = [];
    box.querySelectorAll("fieldset.builder-row").forEach(function (row, i) {
      var p = "c" + i + "_";
      var not = form.querySelector("[name='" + p + "not']");
      found.push({
        kind: value(p + "kind"), name: value(p + "name"), op: value(p + "op"),
        value: value(p + "value"), after: value(p + "after"), before: value(p + "before"),
        not: !!(not && not.checked)
      });
    });
    return found;
  }
  function update() {
    var conditions = rows();
    if (!conditions.some(function (c) { return c.kind; })) return;
    fetch(box.getAttribute("data-rule-build"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ list: list.value, match: value("match"), conditions: conditions })
    }).then(function (r) { return r.json().then(function (body) { return [r.ok, body]; }); })
      .then(function (res) {
        if (res[0]) {
          rule.value = JSON.stringify(res[1].rule);
          out.textContent = res[1].recipients + " recipients match (" + res[1].members + " members in any status).";
        } else {
          out.textContent = res[1].error || "Those conditions do not make a rule yet.";
        }
      })
      .catch(function () { out.textContent = ""; });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 400); }
  box.addEventListener("input", later);
  box.addEventListener("change", later);
})();
