using System.Globalization;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;

namespace Sandbox.Shim.Backend;

/// <summary>
/// The limits of a Task Update (CRI UpdateContainerResources, `ctr task update`): the OCI runtime spec's
/// LinuxResources object, which containerd sends as JSON in an Any of type <see cref="TypeUrl"/>. Only the fields a
/// cgroup can take are read: memory (limit, reservation, swap), cpu (shares, quota, period, cpus, mems) and pids. A
/// field that is absent stays as it is in the container; -1 means "no limit" where the spec allows it.
/// <see cref="Parse"/> checks each value and names the field it refuses, so a bad request never reaches a cgroup.
/// </summary>
public sealed record ContainerResources
{
    public const string TypeUrl = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

    /// <summary>The kernel's bounds for cpu.cfs_period_us and its smallest cpu.cfs_quota_us.</summary>
    private const long MinCpuPeriod = 1_000, MaxCpuPeriod = 1_000_000, MinCpuQuota = 1_000;
    /// <summary>cgroup v1 cpu.shares bounds (the guest maps them to cpu.weight as runc and crun do).</summary>
    private const long MinCpuShares = 2, MaxCpuShares = 262_144;
    /// <summary>The smallest memory limit a container can start a process in; runc refuses less than 6 MiB too.</summary>
    public const long MinMemoryLimit = 6 * 1024 * 1024;

    public long? MemoryLimit { get; init; }
    public long? MemoryReservation { get; init; }
    public long? MemorySwap { get; init; }
    public long? CpuShares { get; init; }
    public long? CpuQuota { get; init; }
    public long? CpuPeriod { get; init; }
    public string? Cpus { get; init; }
    public string? Mems { get; init; }
    public long? PidsLimit { get; init; }

    /// <summary>The update as LinuxResources JSON, with only the fields it sets (what `crun update -r` and
    /// `runc update -r` read).</summary>
    public string Json { get; init; } = "{}";

    /// <summary>Whole CPUs the quota allows (ceil(quota / period)); null when it sets no quota or sets "no limit".</summary>
    public long? CpuLimitCpus => CpuQuota is > 0 ? (CpuQuota.Value + (CpuPeriod ?? 100_000) - 1) / (CpuPeriod ?? 100_000) : null;

    /// <summary>The resources of a Task Update. Throws <see cref="FormatException"/> naming the container and the field.</summary>
    public static ContainerResources FromAny(Any? resources, string containerId)
    {
        if (resources is null || resources.Value.IsEmpty)
            throw new FormatException($"update container {containerId}: the request carries no resources");
        if (resources.TypeUrl != TypeUrl)
            throw new FormatException($"update container {containerId}: resources of type {resources.TypeUrl}; expected {TypeUrl}");
        return Parse(resources.Value.ToStringUtf8(), containerId);
    }

    public static ContainerResources Parse(string json, string containerId)
    {
        string what = $"update container {containerId}";
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{what}: the resources are not valid JSON ({e.Message})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new FormatException($"{what}: the resources are a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object");
            var memory = Section(root, "memory", what);
            var cpu = Section(root, "cpu", what);
            var pids = Section(root, "pids", what);

            var result = new ContainerResources
            {
                MemoryLimit = Number(memory, "memory", "limit", what),
                MemoryReservation = Number(memory, "memory", "reservation", what),
                MemorySwap = Number(memory, "memory", "swap", what),
                CpuShares = Number(cpu, "cpu", "shares", what),
                CpuQuota = Number(cpu, "cpu", "quota", what),
                CpuPeriod = Number(cpu, "cpu", "period", what),
                Cpus = Text(cpu, "cpu", "cpus", what),
                Mems = Text(cpu, "cpu", "mems", what),
                PidsLimit = Number(pids, "pids", "limit", what),
            };
            result.Check(what);
            return result with { Json = result.ToJson() };
        }
    }

    private void Check(string what)
    {
        if (MemoryLimit is { } limit && limit != -1 && limit < MinMemoryLimit)
            throw Refuse(what, "memory.limit", limit, $"at least {MinMemoryLimit} bytes (6 MiB), or -1 for no limit");
        if (MemoryReservation is { } reservation && reservation != -1 && reservation < 0)
            throw Refuse(what, "memory.reservation", reservation, "0 or more bytes, or -1 for none");
        if (MemorySwap is { } swap && swap != -1 && swap < 0)
            throw Refuse(what, "memory.swap", swap, "0 or more bytes (memory + swap), or -1 for no limit");
        if (MemorySwap is > 0 && MemoryLimit is > 0 && MemorySwap < MemoryLimit)
            throw Refuse(what, "memory.swap", MemorySwap.Value, $"at least memory.limit ({MemoryLimit}): it counts memory and swap together");
        if (CpuShares is { } shares && shares != 0 && (shares < MinCpuShares || shares > MaxCpuShares))
            throw Refuse(what, "cpu.shares", shares, $"{MinCpuShares} to {MaxCpuShares}");
        if (CpuPeriod is { } period && period != 0 && (period < MinCpuPeriod || period > MaxCpuPeriod))
            throw Refuse(what, "cpu.period", period, $"{MinCpuPeriod} to {MaxCpuPeriod} microseconds");
        if (CpuQuota is { } quota && quota != -1 && quota != 0 && quota < MinCpuQuota)
            throw Refuse(what, "cpu.quota", quota, $"at least {MinCpuQuota} microseconds, or -1 for no limit");
        if (PidsLimit is { } pids && pids < -1)
            throw Refuse(what, "pids.limit", pids, "a positive number of processes, or -1 (or 0) for no limit");
        if (Cpus is { } cpus && !IsCpuList(cpus))
            throw new FormatException($"{what}: cpu.cpus \"{cpus}\" is not a CPU list such as \"0-1,3\"");
        if (Mems is { } mems && !IsCpuList(mems))
            throw new FormatException($"{what}: cpu.mems \"{mems}\" is not a node list such as \"0\"");
    }

    private string ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            if (MemoryLimit is not null || MemoryReservation is not null || MemorySwap is not null)
            {
                writer.WriteStartObject("memory");
                WriteIfSet(writer, "limit", MemoryLimit);
                WriteIfSet(writer, "reservation", MemoryReservation);
                WriteIfSet(writer, "swap", MemorySwap);
                writer.WriteEndObject();
            }
            if (CpuShares is not null || CpuQuota is not null || CpuPeriod is not null || Cpus is not null || Mems is not null)
            {
                writer.WriteStartObject("cpu");
                WriteIfSet(writer, "shares", CpuShares);
                WriteIfSet(writer, "quota", CpuQuota);
                WriteIfSet(writer, "period", CpuPeriod);
                if (Cpus is not null)
                    writer.WriteString("cpus", Cpus);
                if (Mems is not null)
                    writer.WriteString("mems", Mems);
                writer.WriteEndObject();
            }
            if (PidsLimit is not null)
            {
                writer.WriteStartObject("pids");
                writer.WriteNumber("limit", PidsLimit.Value);
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteIfSet(Utf8JsonWriter writer, string name, long? value)
    {
        if (value is not null)
            writer.WriteNumber(name, value.Value);
    }

    private static JsonElement? Section(JsonElement root, string name, string what)
    {
        if (!root.TryGetProperty(name, out var section) || section.ValueKind == JsonValueKind.Null)
            return null;
        if (section.ValueKind != JsonValueKind.Object)
            throw new FormatException($"{what}: \"{name}\" is a JSON {section.ValueKind.ToString().ToLowerInvariant()}, not an object");
        return section;
    }

    private static long? Number(JsonElement? section, string sectionName, string name, string what)
    {
        if (section is not { } s || !s.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long number))
            throw new FormatException($"{what}: {sectionName}.{name} is {value.GetRawText()}, not a whole number");
        return number;
    }

    private static string? Text(JsonElement? section, string sectionName, string name, string what)
    {
        if (section is not { } s || !s.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw new FormatException($"{what}: {sectionName}.{name} is {value.GetRawText()}, not a string");
        string text = value.GetString()!;
        return text.Length == 0 ? null : text;
    }

    private static FormatException Refuse(string what, string field, long value, string expected) =>
        new($"{what}: {field} is {value.ToString(CultureInfo.InvariantCulture)}; it must be {expected}");

    /// <summary>"0", "0-3", "0,2-3": what cpuset.cpus and cpuset.mems accept.</summary>
    private static bool IsCpuList(string text)
    {
        foreach (string part in text.Split(','))
        {
            var bounds = part.Split('-');
            if (bounds.Length > 2 || bounds.Any(b => b.Length == 0 || !b.All(char.IsAsciiDigit)))
                return false;
            if (bounds.Length == 2 && long.Parse(bounds[0], CultureInfo.InvariantCulture) > long.Parse(bounds[1], CultureInfo.InvariantCulture))
                return false;
        }
        return true;
    }
}
