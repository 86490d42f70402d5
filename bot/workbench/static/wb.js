(function(){var a=document.getElementById("all");if(!a)return;a.addEventListener("change",function(){document.querySelectorAll('input[name="step"]').forEach(function(c){c.checked=a.checked})})})();
