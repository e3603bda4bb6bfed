// Applies the saved theme before the first paint (a classic script, so it
// runs while the page is parsed; modules run only after).
(function () {
  var theme = 'auto';
  try {
    theme = localStorage.getItem('shipshape.theme') || 'auto';
  } catch (e) {
    // Storage can be off (private mode): auto it is.
  }
  if (theme === 'light' || theme === 'dark') {
    document.documentElement.setAttribute('data-theme', theme);
  }
})();
