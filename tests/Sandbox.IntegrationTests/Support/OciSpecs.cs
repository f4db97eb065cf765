using System.Text.Json.Nodes;

namespace Sandbox.IntegrationTests.Support;

/// <summary>OCI runtime specs (config.json) shaped like the ones containerd writes, for tests that call the agent directly.</summary>
public static class OciSpecs
{
    public static string Busybox(IEnumerable<string> args, bool terminal = false, string cwd = "/", IEnumerable<string>? env = null)
    {
        var capabilities = new JsonArray("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
            "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE");
        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2-dev",
            ["process"] = new JsonObject
            {
                ["terminal"] = terminal,
                ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
                ["args"] = new JsonArray(args.Select(a => (JsonNode)a!).ToArray()),
                ["env"] = new JsonArray((env ?? ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]).Select(e => (JsonNode)e!).ToArray()),
                ["cwd"] = cwd,
                ["capabilities"] = new JsonObject
                {
                    ["bounding"] = capabilities.DeepClone(),
                    ["effective"] = capabilities.DeepClone(),
                    ["permitted"] = capabilities.DeepClone(),
                },
                ["rlimits"] = new JsonArray(new JsonObject { ["type"] = "RLIMIT_NOFILE", ["hard"] = 1024, ["soft"] = 1024 }),
                ["noNewPrivileges"] = true,
            },
            ["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = false },
            ["hostname"] = "busybox",
            ["mounts"] = new JsonArray(
                Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
                Mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
                Mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"),
                Mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
                Mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro")),
            ["linux"] = new JsonObject
            {
                ["namespaces"] = new JsonArray(
                    new JsonObject { ["type"] = "pid" }, new JsonObject { ["type"] = "ipc" },
                    new JsonObject { ["type"] = "uts" }, new JsonObject { ["type"] = "mount" }),
                ["maskedPaths"] = new JsonArray("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"),
                ["readonlyPaths"] = new JsonArray("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"),
            },
        };
        return spec.ToJsonString();
    }

    /// <summary>An OCI `process` object for exec.</summary>
    public static string Process(IEnumerable<string> args, bool terminal = false) => new JsonObject
    {
        ["terminal"] = terminal,
        ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
        ["args"] = new JsonArray(args.Select(a => (JsonNode)a!).ToArray()),
        ["env"] = new JsonArray("PATH=/bin:/usr/bin:/sbin:/usr/sbin"),
        ["cwd"] = "/",
    }.ToJsonString();

    private static JsonObject Mount(string destination, string type, string source, params string[] options) => new()
    {
        ["destination"] = destination,
        ["type"] = type,
        ["source"] = source,
        ["options"] = new JsonArray(options.Select(o => (JsonNode)o!).ToArray()),
    };
}
