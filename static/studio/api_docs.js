// The API reference page: Swagger UI (vendored) on the studio's own OpenAPI document. A file
// of its own, not an inline script: the studio's Content-Security-Policy runs no inline code.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  if (!root || typeof SwaggerUIBundle === "undefined") return;
  SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No request leaves the page for validator.swagger.io.
    validatorUrl: null,
    persistAuthorization: false,
  });
});
