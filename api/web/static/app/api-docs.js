// The API reference at /docs: Swagger UI from this server's own copy, reading this server's /openapi.json.
// A file rather than an inline script, so the page keeps the strict Content-Security-Policy (script-src 'self').
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    validatorUrl: null, // never ask an outside validator about this document
  });
});
