import "./app-shell.ts";
import { auth } from "./auth.ts";
import { interceptLinks } from "./router.ts";

interceptLinks(document);
void auth.start();
