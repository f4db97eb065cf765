namespace Sandbox.Hypervisors.Jail;

/// <summary>The capabilities a jail may keep, by the lower-case name of capabilities(7) without CAP_.</summary>
public static class LinuxCapability
{
    private static readonly Dictionary<string, int> Numbers = new()
    {
        ["chown"] = 0,
        ["dac_override"] = 1,
        ["dac_read_search"] = 2,
        ["fowner"] = 3,
        ["fsetid"] = 4,
        ["net_admin"] = 12,
    };

    public static IEnumerable<string> Names => Numbers.Keys;

    public static int? NumberOf(string name) => Numbers.TryGetValue(name, out int number) ? number : null;

    /// <summary>The names of the bits set in a /proc/PID/status Cap* mask ("cap_N" for one not in the table).</summary>
    public static IReadOnlyList<string> NamesOf(ulong mask)
    {
        var names = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((mask & (1UL << bit)) == 0)
                continue;
            names.Add(Numbers.FirstOrDefault(n => n.Value == bit).Key ?? $"cap_{bit}");
        }
        return names;
    }
}
