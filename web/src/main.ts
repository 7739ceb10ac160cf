import "./app-shell.ts";
import { auth } from "./auth.ts";
import { connectGatewayToSession } from "./realtime/session.ts";
import { interceptLinks } from "./router.ts";

interceptLinks(document);
connectGatewayToSession();
void auth.start();
