namespace Sandbox.Shim.Cli;

/// <summary>A command line the shim cannot run; the message says what was wrong.</summary>
public sealed class ShimUsageException : Exception
{
    public ShimUsageException(string message)
        : base(message)
    {
    }
}

/// <summary>
/// Parses the shim's command line the way Go's <c>flag</c> package does: <c>-flag value</c>, <c>-flag=value</c>,
/// one or two dashes, booleans as <c>-debug</c> or <c>-debug=true</c>; parsing stops at the first non-flag
/// argument (the action) or at <c>--</c>. Unknown flags are an error, as in Go.
/// </summary>
public static class ShimFlagParser
{
    public const string Usage =
        "usage: containerd-shim-sandbox-v2 [-namespace NS] [-address ADDR] [-publish-binary PATH] [-id ID] [-bundle DIR] " +
        "[-socket PATH] [-debug] [-v] [start|delete]";

    private static readonly HashSet<string> StringFlags = new(StringComparer.Ordinal)
    {
        "namespace", "address", "publish-binary", "id", "bundle", "socket",
    };

    private static readonly HashSet<string> BoolFlags = new(StringComparer.Ordinal) { "debug", "v" };

    public static ShimFlags Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var booleans = new Dictionary<string, bool>(StringComparer.Ordinal);
        int i = 0;
        for (; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg.Length < 2 || arg[0] != '-')
                break; // first positional argument: the action
            if (arg == "--")
            {
                i++;
                break;
            }
            string body = arg.StartsWith("--", StringComparison.Ordinal) ? arg[2..] : arg[1..];
            if (body.Length == 0 || body[0] == '-' || body[0] == '=')
                throw new ShimUsageException($"bad flag syntax: {arg}\n{Usage}");

            string name = body;
            string? inlineValue = null;
            int equals = body.IndexOf('=');
            if (equals >= 0)
            {
                name = body[..equals];
                inlineValue = body[(equals + 1)..];
            }

            if (BoolFlags.Contains(name))
            {
                booleans[name] = inlineValue is null || ParseBool(name, inlineValue);
            }
            else if (StringFlags.Contains(name))
            {
                if (inlineValue is null)
                {
                    if (i + 1 >= args.Count)
                        throw new ShimUsageException($"flag needs an argument: -{name}\n{Usage}");
                    inlineValue = args[++i];
                }
                values[name] = inlineValue;
            }
            else
            {
                throw new ShimUsageException($"flag provided but not defined: -{name}\n{Usage}");
            }
        }

        string action = i < args.Count ? args[i] : "";
        if (action is not ("" or "start" or "delete"))
            throw new ShimUsageException($"unknown action {Tasks.UntrustedText.Quote(action)}: expected start, delete or none (the daemon)\n{Usage}");
        // both name directories (the socket, the sandbox's state, its cgroup): containerd's identifier rule, as containerd checks them
        foreach (string name in new[] { "id", "namespace" })
        {
            if (values.TryGetValue(name, out string? value) && Tasks.ContainerdIdentifier.Problem(value) is { } problem)
                throw new ShimUsageException($"-{name} {Tasks.UntrustedText.Quote(value)} is not valid: {problem}\n{Usage}");
        }

        return new ShimFlags
        {
            Namespace = values.GetValueOrDefault("namespace", ""),
            Address = values.GetValueOrDefault("address", ""),
            PublishBinary = values.GetValueOrDefault("publish-binary", ""),
            Id = values.GetValueOrDefault("id", ""),
            Bundle = values.GetValueOrDefault("bundle", ""),
            Socket = values.GetValueOrDefault("socket", ""),
            Debug = booleans.GetValueOrDefault("debug"),
            Version = booleans.GetValueOrDefault("v"),
            Action = action,
        };
    }

    private static bool ParseBool(string name, string value) => value switch
    {
        "1" or "t" or "T" or "true" or "TRUE" or "True" => true,
        "0" or "f" or "F" or "false" or "FALSE" or "False" => false,
        _ => throw new ShimUsageException($"invalid boolean value \"{value}\" for -{name}\n{Usage}"),
    };
}
