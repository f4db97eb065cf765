using Sandbox.Cri.Tests.Fixture;

namespace Sandbox.Conformance;

/// <summary>The command line of the conformance run.</summary>
public sealed record ConformanceOptions(string? Output, string? Focus, string Handler)
{
    public static ConformanceOptions Parse(string[] args)
    {
        string? output = null, focus = null;
        string handler = CriFixture.SandboxHandler;
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--output": output = Value(); break;
                case "--focus": focus = Value(); break;
                case "--handler": handler = Value(); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}' (known: --output DIR, --focus REGEX, --handler NAME)");
            }
        }
        return new ConformanceOptions(output, focus, handler);
    }

    /// <summary>The checkout this program was built in: the nearest directory up from it holding Sandbox.sln.</summary>
    public static string FindCheckout()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sandbox.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no Sandbox.sln above {AppContext.BaseDirectory}: run the conformance program from its checkout");
    }
}
