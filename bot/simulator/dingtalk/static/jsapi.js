/* The simulator's stand-in for the DingTalk JSAPI (dingtalk.open.js): only what the workbench's
   sign-in uses. A code request goes to the simulator's "client" page (pick a person), which
   comes back to this page with #dd_sim_code=CODE. */
(function () {
  "use strict";
  var src = document.currentScript ? document.currentScript.src : "";
  var sim = src.replace(/\/_sim\/dingtalk\/jsapi\.js.*$/, "");
  function request(o, ok, fail) {
    var m = location.hash.match(/[#&]dd_sim_code=([^&]+)/);
    if (m) {
      history.replaceState(null, "", location.pathname + location.search);
      ok(decodeURIComponent(m[1]));
      return;
    }
    if (!o || !o.corpId) {
      fail({ errorCode: "3", errorMessage: "corpId is required" });
      return;
    }
    var q = new URLSearchParams({
      corpId: o.corpId,
      clientId: o.clientId || "",
      back: location.href.split("#")[0],
    });
    location.replace(sim + "/_sim/dingtalk/h5auth?" + q.toString());
  }
  window.dd = {
    env: { platform: "simulator" },
    ready: function (cb) { cb(); },
    error: function () {},
    runtime: {
      permission: {
        requestAuthCode: function (o) {
          request(o,
            function (c) { if (o.onSuccess) o.onSuccess({ code: c }); },
            function (e) { if (o.onFail) o.onFail(e); });
        },
      },
    },
    getAuthCode: function (o) {
      o = o || {};
      return new Promise(function (resolve, reject) {
        request(o,
          function (c) { var r = { code: c, authCode: c }; if (o.success) o.success(r); resolve(r); },
          function (e) { if (o.fail) o.fail(e); reject(e); });
      });
    },
  };
})();
