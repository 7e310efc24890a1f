// Issue 10 (login): the password policy's rules, the client-address keys of the login throttle and
// the MEDLOOP_TRUST_PROXY setting, without a database.
import { describe, expect, it } from "vitest";
import { loadConfig, parseTrustProxy } from "../../services/config.js";
import { PASSWORD_MIN_LENGTH, passwordProblem } from "../../services/passwordPolicy.js";
import { addressKey } from "../../services/throttle.js";
import { DEMO_PASSWORD } from "../../services/users.js";

describe("password policy", () => {
  it.each([
    ["", "blank"],
    [" ".repeat(8), "blank"],
    ["\u3000".repeat(PASSWORD_MIN_LENGTH), "blank"], // ideographic spaces
    ["long-enough-but\u0000nul", "control_characters"],
    ["long-enough-but\u0007bell", "control_characters"],
    ["long-enough-but\u007fdelete", "control_characters"],
    ["long-enough-but\u0085next-line", "control_characters"],
    ["12345678", "min_length"],
    ["🔒".repeat(PASSWORD_MIN_LENGTH - 1), "min_length"], // counted in code points, not UTF-16 units
    ["z".repeat(201), "max_length"],
    ["ééééééééééééé", "repeated_character"],
    ["password1234", "common_password"],
    ["QWERTY123456", "common_password"],
  ])("refuses %j (%s)", (password, rule) => {
    expect(passwordProblem(password)?.rule).toBe(rule);
  });

  it.each([DEMO_PASSWORD, "correct horse battery staple", "🔒🔑".repeat(PASSWORD_MIN_LENGTH / 2), "  padded passphrase  "])("accepts %j", (password) => {
    expect(passwordProblem(password)).toBeNull();
  });
});

describe("throttle address keys", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002::", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
  ])("%s → %s", (address, key) => {
    expect(addressKey(address)).toBe(key);
  });
});

describe("MEDLOOP_TRUST_PROXY", () => {
  it("defaults to trusting no proxy", () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(parseTrustProxy("false")).toBe(false);
  });

  it("takes true, a hop count, or addresses, ranges and named ranges", () => {
    expect(parseTrustProxy("true")).toBe(true);
    expect(parseTrustProxy("1")).toBe(1);
    expect(parseTrustProxy("loopback, 10.0.0.0/8, fd00::/8, 192.0.2.1")).toBe("loopback, 10.0.0.0/8, fd00::/8, 192.0.2.1");
  });

  it.each(["yes", "10.0.0.0/33", "proxy.example.org", "10.0.0.1/8/2", "loopback,"])("refuses %j naming the variable", (raw) => {
    expect(() => parseTrustProxy(raw)).toThrow(/MEDLOOP_TRUST_PROXY/);
  });

  it("reads the login throttle settings and refuses nonsense", () => {
    const c = loadConfig({ MEDLOOP_LOGIN_MAX_FAILURES: "4", MEDLOOP_LOGIN_BLOCK_SECONDS: "30" });
    expect(c.loginThrottle).toEqual({ maxFailuresPerAccount: 4, maxFailuresPerAddress: 30, blockSeconds: 30, maxBlockSeconds: 3600 });
    expect(() => loadConfig({ MEDLOOP_LOGIN_MAX_FAILURES: "2.5" })).toThrow(/MEDLOOP_LOGIN_MAX_FAILURES/);
    expect(() => loadConfig({ MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS: "0" })).toThrow(/MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS/);
  });
});
