// Behaviour the pages ask for by data attributes, so that no page needs inline script (the
// Content-Security-Policy allows scripts from this site only).
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
