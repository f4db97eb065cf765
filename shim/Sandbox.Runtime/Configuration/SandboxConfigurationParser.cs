using System.Globalization;
using Sandbox.Hypervisors;
using Sandbox.Runtime.Sandboxes;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace Sandbox.Runtime.Configuration;

/// <summary>
/// Reads configuration.toml into a <see cref="SandboxConfiguration"/>. The TOML syntax tree (Tomlyn's SyntaxParser)
/// is walked by hand, which is trim- and AOT-safe and keeps line numbers for errors. Every key is flattened to its
/// dotted name (tables, dotted keys and inline tables alike), then each known key is read with its own rules.
/// Unknown keys, unknown tables, wrong types and values out of range are errors that name the file, the line, the
/// key and what is accepted. An empty string for a path means "the default" (find it).
/// </summary>
public static class SandboxConfigurationParser
{
    private const string Qemu = "hypervisor.qemu";

    /// <summary>Every key, with what it accepts (for messages and the documentation of the shipped file).</summary>
    public static IReadOnlyDictionary<string, string> KnownKeys { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [$"{Qemu}.path"] = "an absolute path to qemu-system-x86_64, or \"\" to search PATH",
        [$"{Qemu}.kernel"] = "an absolute path to the guest kernel (vmlinux), or \"\" for the installed guest image",
        [$"{Qemu}.initrd"] = "an absolute path to the guest initramfs, or \"\" for the installed guest image",
        [$"{Qemu}.default_vcpus"] = "an integer from 1 to 255",
        [$"{Qemu}.default_memory"] = "an integer number of MiB from 64 to 1048576",
        [$"{Qemu}.accel"] = "\"auto\", \"kvm\" or \"tcg\"",
        [$"{Qemu}.vsock"] = "\"auto\", \"kernel\" or \"hybrid\"",
        [$"{Qemu}.machine_type"] = "\"microvm\" or \"q35\"",
        [$"{Qemu}.tcg_translation_cache"] = "an integer number of MiB from 8 to 2048",
        [$"{Qemu}.clone_tcg_translation_cache"] = "an integer number of MiB from 8 to 2048",
        [$"{Qemu}.vhost_device_vsock_path"] = "an absolute path to vhost-device-vsock, or \"\" to search PATH",
        [$"{Qemu}.host_memory_overhead"] = "an integer number of MiB from 0 to 65536",
        [$"{Qemu}.kernel_params"] = "a string of kernel parameters, appended to the guest kernel's command line",
        [$"{Qemu}.confine"] = "true or false",
        [$"{Qemu}.jailer_path"] = "an absolute path to sandbox-jailer, or \"\" for the one next to the shim (else PATH)",
        [$"{Qemu}.share_allow_setid"] = "true or false",
        [$"{Qemu}.template"] = "true or false",
        ["agent.ready_timeout"] = "a number of seconds greater than 0 and at most 3600",
        ["agent.rpc_timeout"] = "a number of seconds greater than 0 and at most 3600",
        ["agent.liveness_timeout"] = "a number of seconds from 0 (never) to 3600",
        ["agent.debug_console"] = "true or false",
        ["runtime.state_root"] = "an absolute directory path, or \"\" for $SANDBOX_STATE_ROOT or /run/sandbox/sandboxes",
        ["runtime.debug"] = "true or false",
        ["runtime.sandbox_cgroup"] = "true or false",
        ["runtime.idle_exit"] = "a number of seconds from 0 (never) to 3600",
        ["runtime.boot_concurrency"] = "an integer from 0 (no limit) to 1024",
        ["runtime.post_mortem_records"] = "an integer from 0 (none) to 100000",
    };

    private static readonly string[] KnownTables = { "hypervisor", Qemu, "agent", "runtime" };

    /// <summary>Parses <paramref name="toml"/>; <paramref name="source"/> (the file path) goes into messages and the result.</summary>
    public static SandboxConfiguration Parse(string toml, string source)
    {
        var document = SyntaxParser.Parse(toml, source, validate: true);
        if (document.HasErrors)
        {
            var errors = document.Diagnostics.Where(d => d.Kind == DiagnosticMessageKind.Error)
                .Select(d => $"{Where(source, d.Span)}: {d.Message}");
            throw new SandboxConfigurationException($"{source} is not valid TOML:\n" + string.Join('\n', errors));
        }

        var values = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (var keyValue in document.KeyValues)
            Collect(values, "", keyValue, source);
        foreach (var table in document.Tables)
        {
            if (table is TableArraySyntax)
                throw new SandboxConfigurationException($"{Where(source, table.Span)}: arrays of tables ([[...]]) are not used in this file");
            string name = KeyName(table.Name!);
            if (!KnownTables.Contains(name))
                throw new SandboxConfigurationException(
                    $"{Where(source, table.Span)}: unknown table [{name}]; accepted tables: [{Qemu}], [agent], [runtime]");
            foreach (var keyValue in table.Items)
                Collect(values, name + ".", keyValue, source);
        }

        var reader = new Reader(values, source);
        var defaults = new SandboxConfiguration();
        var kernel = reader.KernelChoice($"{Qemu}.kernel");
        var configuration = new SandboxConfiguration
        {
            Source = source,
            Qemu = new QemuSettings
            {
                Path = reader.Path($"{Qemu}.path"),
                Kernel = kernel.Path,
                GuestKernel = kernel.Kernel,
                Initrd = reader.Path($"{Qemu}.initrd"),
                DefaultVcpus = reader.Integer($"{Qemu}.default_vcpus", 1, 255) ?? defaults.Qemu.DefaultVcpus,
                DefaultMemoryMiB = reader.Integer($"{Qemu}.default_memory", 64, 1048576) ?? defaults.Qemu.DefaultMemoryMiB,
                Accel = reader.Choice($"{Qemu}.accel", new Dictionary<string, Acceleration>
                {
                    ["auto"] = Acceleration.Auto, ["kvm"] = Acceleration.Kvm, ["tcg"] = Acceleration.Tcg,
                }) ?? defaults.Qemu.Accel,
                Vsock = reader.Choice($"{Qemu}.vsock", new Dictionary<string, VsockMode>
                {
                    ["auto"] = VsockMode.Auto, ["kernel"] = VsockMode.Kernel, ["hybrid"] = VsockMode.Hybrid,
                }) ?? defaults.Qemu.Vsock,
                MachineType = reader.Choice($"{Qemu}.machine_type", new Dictionary<string, MachineType>
                {
                    ["microvm"] = MachineType.Microvm, ["q35"] = MachineType.Q35,
                }) ?? defaults.Qemu.MachineType,
                TcgTranslationCacheMiB = reader.Integer($"{Qemu}.tcg_translation_cache", 8, 2048) ?? defaults.Qemu.TcgTranslationCacheMiB,
                CloneTcgTranslationCacheMiB = reader.Integer($"{Qemu}.clone_tcg_translation_cache", 8, 2048) ?? defaults.Qemu.CloneTcgTranslationCacheMiB,
                VhostDeviceVsockPath = reader.Path($"{Qemu}.vhost_device_vsock_path"),
                HostMemoryOverheadMiB = reader.Integer($"{Qemu}.host_memory_overhead", 0, 65536) ?? defaults.Qemu.HostMemoryOverheadMiB,
                KernelParams = reader.Text($"{Qemu}.kernel_params") ?? defaults.Qemu.KernelParams,
                Confine = reader.Boolean($"{Qemu}.confine") ?? defaults.Qemu.Confine,
                JailerPath = reader.Path($"{Qemu}.jailer_path"),
                ShareAllowSetId = reader.Boolean($"{Qemu}.share_allow_setid") ?? defaults.Qemu.ShareAllowSetId,
                Template = reader.Boolean($"{Qemu}.template") ?? defaults.Qemu.Template,
            },
            Agent = new AgentSettings
            {
                ReadyTimeout = reader.Seconds("agent.ready_timeout") ?? defaults.Agent.ReadyTimeout,
                RpcTimeout = reader.Seconds("agent.rpc_timeout") ?? defaults.Agent.RpcTimeout,
                LivenessTimeout = reader.Seconds("agent.liveness_timeout", zeroAllowed: true) ?? defaults.Agent.LivenessTimeout,
                DebugConsole = reader.Boolean("agent.debug_console") ?? defaults.Agent.DebugConsole,
            },
            Runtime = new RuntimeSettings
            {
                StateRoot = reader.Path("runtime.state_root"),
                Debug = reader.Boolean("runtime.debug") ?? defaults.Runtime.Debug,
                SandboxCgroup = reader.Boolean("runtime.sandbox_cgroup") ?? defaults.Runtime.SandboxCgroup,
                IdleExit = reader.Seconds("runtime.idle_exit", zeroAllowed: true) ?? defaults.Runtime.IdleExit,
                BootConcurrency = reader.Integer("runtime.boot_concurrency", 0, 1024) ?? defaults.Runtime.BootConcurrency,
                PostMortemRecords = reader.Integer("runtime.post_mortem_records", 0, 100000) ?? defaults.Runtime.PostMortemRecords,
            },
        };

        foreach (var (key, entry) in values)
        {
            if (!KnownKeys.ContainsKey(key))
                throw new SandboxConfigurationException($"{Where(source, entry.Span)}: unknown key '{key}'; {AcceptedKeysNear(key)}");
        }
        return configuration;
    }

    private static string AcceptedKeysNear(string key)
    {
        int dot = key.LastIndexOf('.');
        string table = dot > 0 ? key[..dot] : "";
        var siblings = KnownKeys.Keys.Where(k => k.StartsWith(table + ".", StringComparison.Ordinal) && k.LastIndexOf('.') == dot).ToArray();
        return siblings.Length > 0
            ? $"accepted keys in [{table}]: {string.Join(", ", siblings.Select(k => k[(dot + 1)..]))}"
            : $"accepted keys: {string.Join(", ", KnownKeys.Keys)}";
    }

    private static void Collect(Dictionary<string, Entry> values, string prefix, KeyValueSyntax keyValue, string source)
    {
        string key = prefix + KeyName(keyValue.Key!);
        if (keyValue.Value is InlineTableSyntax inline)
        {
            foreach (var item in inline.Items)
                Collect(values, key + ".", item.KeyValue!, source);
            return;
        }
        if (!values.TryAdd(key, new Entry(keyValue.Value!, keyValue.Span)))
            throw new SandboxConfigurationException($"{Where(source, keyValue.Span)}: key '{key}' is set twice");
    }

    private static string KeyName(KeySyntax key)
    {
        var parts = new List<string> { Part(key.Key!) };
        foreach (var dotted in key.DotKeys)
            parts.Add(Part(dotted.Key!));
        return string.Join('.', parts);
    }

    private static string Part(BareKeyOrStringValueSyntax part) => part switch
    {
        BareKeySyntax bare => bare.Key!.Text!,
        StringValueSyntax quoted => quoted.Value!,
        _ => part.ToString()!.Trim(),
    };

    private static string Where(string source, SourceSpan span) =>
        $"{source}:{span.Start.Line + 1}";

    private readonly record struct Entry(ValueSyntax Value, SourceSpan Span);

    /// <summary>Reads one key at a time with its own rules; an absent key gives null (the default applies).</summary>
    private sealed class Reader(Dictionary<string, Entry> values, string source)
    {
        public string? Path(string key)
        {
            if (!values.TryGetValue(key, out var entry))
                return null;
            if (entry.Value is not StringValueSyntax { Value: { } text })
                throw Invalid(key, entry);
            if (text.Length == 0)
                return null;
            if (!System.IO.Path.IsPathRooted(text))
                throw Invalid(key, entry, $"'{text}' is not an absolute path");
            return text;
        }

        /// <summary>[hypervisor.qemu] kernel: "" or "sandbox" (ours), "generic" (Debian's), or an absolute path.</summary>
        public (string? Path, GuestKernel Kernel) KernelChoice(string key)
        {
            switch (Text(key))
            {
                case null or "" or "sandbox":
                    return (null, GuestKernel.Sandbox);
                case "generic":
                    return (null, GuestKernel.Generic);
                case { } text when System.IO.Path.IsPathRooted(text):
                    return (text, GuestKernel.Sandbox);
                case { } text:
                    throw Invalid(key, values[key], $"'{text}' is not an absolute path, \"sandbox\" or \"generic\"");
            }
        }

        public string? Text(string key)
        {
            if (!values.TryGetValue(key, out var entry))
                return null;
            if (entry.Value is not StringValueSyntax { Value: { } text })
                throw Invalid(key, entry);
            if (text.Any(char.IsControl))
                throw Invalid(key, entry, "it holds a control character");
            return text;
        }

        public int? Integer(string key, int min, int max)
        {
            if (!values.TryGetValue(key, out var entry))
                return null;
            if (entry.Value is not IntegerValueSyntax integer)
                throw Invalid(key, entry);
            if (integer.Value < min || integer.Value > max)
                throw Invalid(key, entry, $"{integer.Value} is out of range");
            return (int)integer.Value;
        }

        public TimeSpan? Seconds(string key, bool zeroAllowed = false)
        {
            if (!values.TryGetValue(key, out var entry))
                return null;
            double seconds = entry.Value switch
            {
                IntegerValueSyntax integer => integer.Value,
                FloatValueSyntax number => number.Value,
                _ => throw Invalid(key, entry),
            };
            if (!((seconds > 0 || (zeroAllowed && seconds == 0)) && seconds <= 3600))
                throw Invalid(key, entry, $"{seconds.ToString(CultureInfo.InvariantCulture)} is out of range");
            return TimeSpan.FromSeconds(seconds);
        }

        public bool? Boolean(string key)
        {
            if (!values.TryGetValue(key, out var entry))
                return null;
            return entry.Value is BooleanValueSyntax boolean ? boolean.Value : throw Invalid(key, entry);
        }

        public T? Choice<T>(string key, Dictionary<string, T> choices)
            where T : struct
        {
            if (!values.TryGetValue(key, out var entry))
                return null;
            if (entry.Value is not StringValueSyntax { Value: { } text })
                throw Invalid(key, entry);
            return choices.TryGetValue(text, out var choice) ? choice : throw Invalid(key, entry, $"'{text}' is not accepted");
        }

        private SandboxConfigurationException Invalid(string key, Entry entry, string? problem = null)
        {
            string found = problem ?? $"found {Describe(entry.Value)}";
            return new SandboxConfigurationException(
                $"{Where(source, entry.Span)}: bad value for '{key}': {found}; accepted: {KnownKeys[key]}");
        }

        private static string Describe(ValueSyntax value) => value switch
        {
            StringValueSyntax => "a string",
            IntegerValueSyntax => "an integer",
            FloatValueSyntax => "a float",
            BooleanValueSyntax => "a boolean",
            ArraySyntax => "an array",
            DateTimeValueSyntax => "a date-time",
            _ => value.GetType().Name,
        };
    }
}
