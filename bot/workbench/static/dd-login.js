/* Workbench sign-in inside DingTalk (H5 micro-app 免登): ask the client for a one-time authCode,
   then let the server exchange it (bot/workbench/dingtalk_auth.py). */
(function () {
  "use strict";
  var box = document.getElementById("dd-login");
  var outside = document.getElementById("dd-outside");
  function go(code) {
    if (code) location.replace(box.dataset.auth + "&code=" + encodeURIComponent(code));
  }
  function fail() {
    document.getElementById("dd-status").hidden = true;
    outside.hidden = false;
  }
  var dd = window.dd;
  if (!box || !dd) { fail(); return; }
  var opts = { corpId: box.dataset.corpId, clientId: box.dataset.clientId };
  dd.ready(function () {
    if (dd.runtime && dd.runtime.permission && dd.runtime.permission.requestAuthCode) {
      opts.onSuccess = function (r) { go(r.code); };
      opts.onFail = fail;
      dd.runtime.permission.requestAuthCode(opts);
    } else if (dd.getAuthCode) {
      opts.success = function (r) { go(r.code || r.authCode); };
      opts.fail = fail;
      dd.getAuthCode(opts);
    } else {
      fail();
    }
  });
  if (dd.error) dd.error(fail);
})();
