/* fcn-book: let ipywidgets' html-manager typeset with MathJax 3.
 *
 * @jupyter-widgets/base's typeset() (inside html-manager/embed.js) calls the
 * MathJax 2 API `MathJax.Hub.Queue(["Typeset", MathJax.Hub, el])` whenever
 * window.MathJax exists.  Sphinx loads MathJax 3, which has no `Hub`, so every
 * widget description label threw "Cannot read properties of undefined
 * (reading 'Queue')".  This gives MathJax 3 a minimal `Hub.Queue` that
 * forwards to `MathJax.typesetPromise`.  Load it before embed.js (it waits for
 * DOMContentLoaded, when the deferred MathJax script has run).
 * Licence: MIT (same as fcn-book).
 */
(function () {
  "use strict";
  function install() {
    var M = window.MathJax;
    if (!M || M.Hub || !M.version) return;  // not loaded yet, MathJax 2, or done
    M.Hub = {
      Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          var el = Array.isArray(job) && job[0] === "Typeset" ? job[2] : null;
          if (!el) continue;
          var ready = M.startup && M.startup.promise ? M.startup.promise : Promise.resolve();
          ready.then(function (node) {
            return function () { return M.typesetPromise ? M.typesetPromise([node]) : null; };
          }(el)).catch(function (err) { console.warn("MathJax typeset of widget failed:", err); });
        }
      }
    };
  }
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
