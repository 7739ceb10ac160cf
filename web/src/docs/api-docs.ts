// The ES bundle, not the package's index.js: the latter also pulls in a Node-only helper.
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-es-bundle.js";
import "swagger-ui-dist/swagger-ui.css";
import "./api-docs.css";

SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // The default validator badge calls an external service, which this deployment cannot reach.
  validatorUrl: null,
  displayRequestDuration: true,
});
