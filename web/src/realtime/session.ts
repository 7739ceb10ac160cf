import { auth } from "../auth.ts";
import { gateway } from "./gateway.ts";

/** The gateway runs while someone is signed in: it starts at sign-in and stops at logout. */
export function connectGatewayToSession(): void {
  const follow = (): void => {
    const user = auth.user;
    if (user) gateway.start(user.id);
    else if (auth.status === "signed-out") gateway.stop();
  };
  auth.addEventListener("change", follow);
  follow();
}
